#!/usr/bin/env python3
"""Writes the /proc + /sys fixture trees that tests/unit/test_probe.c points the probe at
(SCALEWISE_PROCFS_ROOT / SCALEWISE_SYSFS_ROOT). Synthetic but laid out as Linux lays them out;
rerun after changing a machine: python3 tests/data/probe/make_fixtures.py

spr-2s   2-socket Sapphire Rapids (Xeon Platinum 8480+), trimmed to 4 cores x 2 threads per
         socket; cgroup v2 with memory.max 64 GiB (4 GiB in use) and cpu.max of 8 CPUs.
zen3-v1  1-socket Zen 3 (EPYC 7763), 4 cores without SMT, cpu3 offline, no cpufreq and no
         "online" list; cgroup v1 with a 8 GiB memory limit (1 GiB used) and a 1.5-CPU quota.
"""
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))


def put(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text if text.endswith("\n") else text + "\n")


def cpulist(cpus):
    cpus = sorted(cpus)
    out, i = [], 0
    while i < len(cpus):
        j = i
        while j + 1 < len(cpus) and cpus[j + 1] == cpus[j] + 1:
            j += 1
        out.append(str(cpus[i]) if i == j else f"{cpus[i]}-{cpus[j]}")
        i = j + 1
    return ",".join(out)


def cpuinfo(n, vendor, family, model, name, mhz, flags, pkg_of, core_of, siblings, cores):
    blocks = []
    for c in range(n):
        blocks.append(
            f"processor\t: {c}\nvendor_id\t: {vendor}\ncpu family\t: {family}\n"
            f"model\t\t: {model}\nmodel name\t: {name}\nstepping\t: 8\n"
            f"cpu MHz\t\t: {mhz}\nphysical id\t: {pkg_of(c)}\nsiblings\t: {siblings}\n"
            f"core id\t\t: {core_of(c)}\ncpu cores\t: {cores}\nflags\t\t: {flags}\n")
    return "\n".join(blocks)


def spr_2s():
    root = os.path.join(HERE, "spr-2s")
    shutil.rmtree(root, ignore_errors=True)
    proc, sys = os.path.join(root, "proc"), os.path.join(root, "sys")
    n = 16  # cpu c and c+8 are SMT siblings; cpus 0-3 (+8) on package 0, 4-7 (+8) on package 1
    pkg = lambda c: (c % 8) // 4
    core = lambda c: c % 4
    flags = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush "
             "mmx fxsr sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc pni pclmulqdq "
             "ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand "
             "hypervisor lahf_lm abm 3dnowprefetch fsgsbase bmi1 hle avx2 smep bmi2 erms "
             "invpcid rtm avx512f avx512dq rdseed adx smap avx512ifma clflushopt clwb "
             "avx512cd sha_ni avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves avx_vnni "
             "avx512_bf16 wbnoinvd arat avx512vbmi umip pku ospke waitpkg avx512_vbmi2 gfni "
             "vaes vpclmulqdq avx512_vnni avx512_bitalg avx512_vpopcntdq rdpid movdiri "
             "movdir64b fsrm md_clear serialize tsxldtrk amx_bf16 avx512_fp16 amx_tile "
             "amx_int8 arch_capabilities")
    put(proc, "cpuinfo", cpuinfo(n, "GenuineIntel", 6, 143, "Intel(R) Xeon(R) Platinum 8480+",
                                 "2000.000", flags, pkg, core, 8, 4))
    put(proc, "meminfo", "MemTotal:       1056766444 kB\nMemFree:        1030000000 kB\n"
                         "MemAvailable:   1020000000 kB\nBuffers:          123456 kB\n")
    put(proc, "self/cgroup", "0::/system.slice/train.service")
    cg = os.path.join(sys, "fs/cgroup")
    put(cg, "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc")
    put(cg, "system.slice/memory.max", "max")
    put(cg, "system.slice/cpu.max", "max 100000")
    put(cg, "system.slice/train.service/memory.max", str(64 << 30))
    put(cg, "system.slice/train.service/memory.current", str(4 << 30))
    put(cg, "system.slice/train.service/cpu.max", "800000 100000")
    dev = "devices/system/cpu"
    put(sys, f"{dev}/online", f"0-{n - 1}")
    put(sys, f"{dev}/possible", f"0-{n - 1}")
    for c in range(n):
        d = f"{dev}/cpu{c}"
        put(sys, f"{d}/topology/physical_package_id", str(pkg(c)))
        put(sys, f"{d}/topology/core_id", str(core(c)))
        put(sys, f"{d}/topology/core_cpus_list", cpulist([c % 8, c % 8 + 8]))
        caches = [(1, "Data", "48K", [c % 8, c % 8 + 8]), (1, "Instruction", "32K", [c % 8, c % 8 + 8]),
                  (2, "Unified", "2048K", [c % 8, c % 8 + 8]),
                  (3, "Unified", "107520K", [x for x in range(n) if pkg(x) == pkg(c)])]
        for i, (level, typ, size, shared) in enumerate(caches):
            put(sys, f"{d}/cache/index{i}/level", str(level))
            put(sys, f"{d}/cache/index{i}/type", typ)
            put(sys, f"{d}/cache/index{i}/size", size)
            put(sys, f"{d}/cache/index{i}/shared_cpu_list", cpulist(shared))
        if c > 0:
            put(sys, f"{d}/online", "1")
        put(sys, f"{d}/cpufreq/cpuinfo_max_freq", "3800000")
    for node in (0, 1):
        put(sys, f"devices/system/node/node{node}/cpulist",
            cpulist([x for x in range(n) if pkg(x) == node]))
    put(sys, "devices/system/node/online", "0-1")


def zen3_v1():
    root = os.path.join(HERE, "zen3-v1")
    shutil.rmtree(root, ignore_errors=True)
    proc, sys = os.path.join(root, "proc"), os.path.join(root, "sys")
    n = 4
    flags = ("fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush "
             "mmx fxsr sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm rep_good nopl "
             "cpuid extd_apicid pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe "
             "popcnt aes xsave avx f16c rdrand hypervisor lahf_lm cmp_legacy cr8_legacy abm "
             "sse4a misalignsse 3dnowprefetch osvw topoext invpcid_single ssbd ibrs ibpb "
             "stibp vmmcall fsgsbase bmi1 avx2 smep bmi2 invpcid rdseed adx smap clflushopt "
             "clwb sha_ni xsaveopt xsavec xgetbv1 xsaves clzero xsaveerptr wbnoinvd arat umip "
             "vaes vpclmulqdq rdpid fsrm")
    put(proc, "cpuinfo", cpuinfo(n, "AuthenticAMD", 25, 1, "AMD EPYC 7763 64-Core Processor",
                                 "2445.406", flags, lambda c: 0, lambda c: c, 4, 4))
    put(proc, "meminfo", "MemTotal:       32871220 kB\nMemFree:        30000000 kB\n"
                         "MemAvailable:   31000000 kB\n")
    put(proc, "self/cgroup", "12:pids:/docker/abc\n4:memory:/docker/abc\n"
                             "2:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n0::/")
    put(sys, "fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712")
    put(sys, "fs/cgroup/memory/docker/abc/memory.limit_in_bytes", str(8 << 30))
    put(sys, "fs/cgroup/memory/docker/abc/memory.usage_in_bytes", str(1 << 30))
    put(sys, "fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1")
    put(sys, "fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "150000")
    put(sys, "fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000")
    dev = "devices/system/cpu"
    for c in range(n):
        d = f"{dev}/cpu{c}"
        put(sys, f"{d}/topology/physical_package_id", "0")
        put(sys, f"{d}/topology/core_id", str(c))
        caches = [(1, "Data", "32K", [c]), (1, "Instruction", "32K", [c]),
                  (2, "Unified", "512K", [c]), (3, "Unified", "32768K", list(range(n)))]
        for i, (level, typ, size, shared) in enumerate(caches):
            put(sys, f"{d}/cache/index{i}/level", str(level))
            put(sys, f"{d}/cache/index{i}/type", typ)
            put(sys, f"{d}/cache/index{i}/size", size)
            put(sys, f"{d}/cache/index{i}/shared_cpu_list", cpulist(shared))
        if c > 0:
            put(sys, f"{d}/online", "0" if c == 3 else "1")
    put(sys, "devices/system/node/node0/cpulist", "0-3")


if __name__ == "__main__":
    spr_2s()
    zen3_v1()
