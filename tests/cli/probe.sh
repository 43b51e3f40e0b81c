# `scalewise probe`: the three formats (json and yaml parsed by Python), --save then
# --hardware round trip, the fake H100/L40S machines through the binary's real NVML/CUDA
# loading code, the "no driver" answer, and bad flags (exit 2, the flag named).
. "$(dirname "$0")/lib.sh"

# text, with the measurements
expect_rc 0 "probe text" -- "$SW" probe
expect_grep '^CPU ' "$TMP/out" "text has the CPU"
expect_grep '^Memory +total ' "$TMP/out" "text has memory"
expect_grep '^FMA loop +[0-9.]+ [GT]FLOP/s on 1 thread' "$TMP/out" "text has the FMA loop"
expect_grep '^Triad +[0-9.]+ [GT]B/s' "$TMP/out" "text has the triad"
expect_grep '^(NCCL|MPI) ' "$TMP/out" "text has NCCL/MPI lines"

# json and yaml parse, and carry the CPU
expect_rc 0 "probe json" -- "$SW" probe --format json --no-measure
if "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["cpu"]["logical_cpus"] >= 1' "$TMP/out"
then ok; else fail "json output does not parse or lacks cpu.logical_cpus"; fi
expect_rc 0 "probe yaml" -- "$SW" probe --format=yaml --no-measure
if "$PY" -c 'import yaml,sys; d=yaml.safe_load(open(sys.argv[1])); assert d["name"] == "probed"' "$TMP/out"
then ok; else fail "yaml output does not parse or name is not 'probed'"; fi

# --save then --hardware: the saved report shows again, byte for byte the same YAML
expect_rc 0 "probe --save" -- "$SW" probe --no-measure --save "$TMP/report.yaml"
expect_grep 'report written to' "$TMP/err" "--save says where it wrote"
expect_rc 0 "probe --hardware yaml" -- "$SW" probe --hardware "$TMP/report.yaml" --format yaml
if cmp -s "$TMP/out" "$TMP/report.yaml"; then ok; else fail "--hardware does not reproduce the saved report"; fi
expect_rc 0 "probe --hardware text" -- "$SW" probe --hardware "$TMP/report.yaml"
expect_grep "^Report +.*report.yaml" "$TMP/out" "text names the report"

# no driver is a normal answer
expect_rc 0 "probe without a driver" -- env SCALEWISE_NVML_LIBRARY=/nonexistent/libnvidia-ml.so.1 \
  SCALEWISE_CUDA_LIBRARY=/nonexistent/libcuda.so.1 "$SW" probe --no-measure
expect_grep 'no NVIDIA GPU: driver library not found' "$TMP/out" "no-driver status"

# the fake machines through the real loading code
if [ -n "${SW_FAKE_GPU_DIR:-}" ] && [ -f "$SW_FAKE_GPU_DIR/libfake_nvml.so" ]; then
  fake() { env SCALEWISE_NVML_LIBRARY="$SW_FAKE_GPU_DIR/libfake_nvml.so" \
    SCALEWISE_CUDA_LIBRARY="$SW_FAKE_GPU_DIR/libfake_cuda.so" SW_FAKE_GPU_MACHINE="$1" \
    "$SW" probe --no-measure "${@:2}"; }
  expect_rc 0 "fake h100 text" -- fake h100
  expect_grep '^GPUs +8' "$TMP/out" "8 GPUs"
  expect_grep 'NVIDIA H100 80GB HBM3 .* 9\.0 +132 +1980 +2619 +3\.35 TB/s +Gen5 x16 +18 links' \
    "$TMP/out" "H100 row"
  expect_grep '^  GPU7 +(NVSwitch +){7}X$' "$TMP/out" "link matrix row"
  expect_grep '989\.4' "$TMP/out" "bf16 peak"
  expect_rc 0 "fake h100 json" -- fake h100 --format json
  if "$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
g = d["gpus"]
assert len(g) == 8, len(g)
assert g[0]["sm_count"] == 132 and g[0]["compute_capability"] == "9.0"
assert abs(g[0]["memory_bandwidth_gbps"] - 3352) < 34, g[0]["memory_bandwidth_gbps"]
assert d["links"]["class"] == "nvswitch", d["links"]' "$TMP/out"
  then ok; else fail "fake h100 json: $(head -c 300 "$TMP/out")"; fi
  expect_rc 0 "fake l40s" -- fake l40s
  expect_grep '^  GPU0 +X +PIX +SYS +SYS$' "$TMP/out" "PCIe link matrix"
  expect_rc 0 "fake driver not loaded" -- fake none
  expect_grep 'no NVIDIA GPU: Driver Not Loaded' "$TMP/out" "NVML error string in the status"
else
  echo "skip fake GPU checks: SW_FAKE_GPU_DIR not set or fakes not built"
fi

# bad input
expect_rc 2 "unknown flag" -- "$SW" probe --formt json
expect_grep "unknown flag '--formt'; did you mean '--format'" "$TMP/err" "unknown flag named"
expect_rc 2 "bad format" -- "$SW" probe --format xml
expect_grep "--format: unknown format 'xml'" "$TMP/err" "bad format named"
expect_rc 2 "missing value" -- "$SW" probe --save
expect_grep "--save needs a value" "$TMP/err" "missing value named"
expect_rc 2 "value on a switch" -- "$SW" probe --no-measure=yes
expect_rc 2 "stray argument" -- "$SW" probe extra
expect_rc 2 "missing report" -- "$SW" probe --hardware "$TMP/nope.yaml"
expect_grep "--hardware: .*nope.yaml" "$TMP/err" "missing report named"
expect_rc 1 "unwritable --save" -- "$SW" probe --no-measure --save "$TMP/no/such/dir/r.yaml"
expect_rc 0 "help" -- "$SW" probe --help
expect_grep '^usage: scalewise probe' "$TMP/out" "usage text"

cli_finish
