#!/usr/bin/perl
# tests/cuda_emu/cu2cpp.pl FILE.cu > FILE.cpp
# Turns a CUDA kernel file into C++ that g++ compiles against tests/cuda_emu/cuda_emu.h (the
# Makefile writes the result to build/cuda_emu/; the source file is never modified). Only the two
# constructs that no header can express are rewritten, keeping every line where it was (a
# #line directive maps errors and debuggers back to FILE.cu):
#   kernel<<<cfg>>>(args)                ->  emu_launch(emu_cfg(cfg), kernel, args)
#   extern __shared__ [__align__(N)] T name[];  ->  T *name = static_cast<T *>(emu_dyn_smem());
# kernel may carry template arguments (flat_kernel<Op>, tc_forward_kernel<HS>); cfg is the
# launch configuration (grid, block[, shared bytes[, stream]]). A template kernel of this file
# launched by its bare name (matmul.cu's f32_to_16_kernel: the arguments deduce T) becomes
# emu_launch_deduced(...) instead, which picks the specialization from the argument types.
# Everything else is left to the header (qualifiers, built-ins, runtime calls). Fails if a
# construct is left unconverted.
use strict;
use warnings;

my $path = shift or die "usage: cu2cpp.pl FILE.cu\n";
open(my $fh, '<', $path) or die "$path: $!\n";
my $src = do { local $/; <$fh> };
close $fh;

# Names of the file's template kernels (template <...> __global__ ... name(), with any
# __launch_bounds__(...) dropped first so that it is not taken for the name).
my %templ;
(my $decls = $src) =~ s/__launch_bounds__\s*\([^)]*\)//g;
$templ{$1} = 1 while $decls =~ /\btemplate\s*<[^<>]*>\s*__global__\b[^;{(]*?\b([A-Za-z_]\w*)\s*\(/g;
sub launcher { my ($k) = @_; return exists $templ{$k} ? 'emu_launch_deduced' : 'emu_launch'; }

my $kernel = qr/\b([A-Za-z_]\w*(?:\s*<[^<>;(){}]*>)?)/;
# Launches without arguments, then the others: the argument list and its ')' stay in place.
$src =~ s/$kernel(\s*)<<<(.*?)>>>\s*\(\s*\)/launcher($1) . "(emu_cfg($3), $1)$2"/gse;
$src =~ s/$kernel(\s*)<<<(.*?)>>>(\s*)\(/launcher($1) . "(emu_cfg($3), $1, $2$4"/gse;
$src =~ s/\bextern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s+)?([A-Za-z_][\w ]*?)\s+(\w+)\s*\[\s*\]\s*;
         /$1 *$2 = static_cast<$1 *>(emu_dyn_smem());/gx;

die "$path: a launch was not converted\n" if $src =~ /<<<|>>>\s*\(/;
die "$path: an extern __shared__ array was not converted\n" if $src =~ /extern\s+__shared__/;
print "#include \"cuda_emu.h\"\n#line 1 \"$path\"\n$src";
