#!/usr/bin/env bash
# Run HERE (a Debian machine with scripts/setup.sh's packages), before a GPU run: fills the ignored
# folder third_party/ with what scripts/device_check.sh needs on the GPU machine, which has nvcc,
# CMake, ninja and PyTorch but no Debian packages and no network:
#   third_party/googletest/        GoogleTest sources (Debian's googletest, built there)
#   third_party/include/nlohmann/  nlohmann/json, header only (Debian's nlohmann-json3-dev)
#   third_party/cudnn_frontend/include/  the cudnn-frontend C++ headers (header only, ~3 MB): from
#                                  the nvidia-cudnn-frontend package in .venv (scripts/setup.sh),
#                                  else from its wheel (pip download); cuDNN itself is the
#                                  GPU machine's (PyTorch's nvidia-cudnn wheel)
#   third_party/deps.tar.xz        x86-64 libraries with their headers: openblas/ (OpenMP build,
#                                  cblas.h and the Fortran runtime it links, for the CPU reference
#                                  ops the CUDA tests call) and sys/ (zlib, zstd and OpenSSL's
#                                  libcrypto, which the library links for its input readers and
#                                  the tokenizer's hash checks)
# About 12 MB in all. Licenses: GoogleTest BSD-3, nlohmann/json MIT, cudnn-frontend MIT and
# Apache-2.0 (its license files are copied with it), OpenBLAS BSD-3, libgfortran and
# libquadmath GPL-3 with the GCC runtime library exception (copied unmodified, for testing only).
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(uname -m)" = x86_64 ] || { echo "device_prepare: the GPU machine is x86-64; run this on x86-64" >&2; exit 1; }
blas_dir=/usr/lib/x86_64-linux-gnu/openblas-openmp
blas_inc=/usr/include/x86_64-linux-gnu/openblas-openmp
for f in /usr/src/googletest/CMakeLists.txt /usr/include/nlohmann/json.hpp "$blas_dir/libopenblas.so.0" \
  "$blas_inc/cblas.h" /usr/include/zstd.h /usr/include/zlib.h /usr/include/openssl/evp.h; do
  [ -e "$f" ] || { echo "device_prepare: $f is missing: run scripts/setup.sh first" >&2; exit 1; }
done

tp=third_party
rm -rf "$tp"
mkdir -p "$tp/include"
cp -r /usr/src/googletest "$tp/googletest"
rm -rf "$tp/googletest/docs" "$tp/googletest/googlemock/docs" "$tp/googletest/googletest/docs"
cp -r /usr/include/nlohmann "$tp/include/"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

# cudnn-frontend headers, the version scripts/setup.sh pins: .venv's copy, else the wheel's include/
# (the headers are the same in every wheel of a version: ask for the cp311 manylinux one).
fe_version=1.32.0
py=python3
[ -x .venv/bin/python ] && py=.venv/bin/python
fe_inc=$("$py" -c "import importlib.metadata as m, os, sys
d = m.distribution('nvidia-cudnn-frontend')
if d.version != '$fe_version': sys.exit(1)
print(os.path.dirname(str(d.locate_file('include/cudnn_frontend.h'))))" 2>/dev/null) || fe_inc=""
fe_lic=""
if [ -n "$fe_inc" ] && [ -f "$fe_inc/cudnn_frontend.h" ]; then
  fe_from=".venv ($fe_inc)"
  fe_lic=$("$py" -c "import importlib.metadata as m; d = m.distribution('nvidia-cudnn-frontend'); print(' '.join(str(d.locate_file(f)) for f in d.files if '/licenses/' in str(f) or str(f).endswith('NOTICE')))" 2>/dev/null) || fe_lic=""
else
  mkdir -p "$stage/fe"
  "$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.11 --platform manylinux_2_28_x86_64 "nvidia-cudnn-frontend==$fe_version" \
    -d "$stage/fe" || { echo "device_prepare: could not fetch nvidia-cudnn-frontend==$fe_version (pip download); run scripts/setup.sh" >&2; exit 1; }
  "$py" -c "import sys, zipfile, glob
z = zipfile.ZipFile(glob.glob(sys.argv[1] + '/*.whl')[0])
z.extractall(sys.argv[1] + '/x', [n for n in z.namelist() if n.startswith('include/') or '/licenses/' in n])" "$stage/fe"
  fe_inc=$stage/fe/x/include
  fe_lic=$(ls "$stage"/fe/x/*.dist-info/licenses/* 2>/dev/null | tr '\n' ' ')
  fe_from="the PyPI wheel"
fi
mkdir -p "$tp/cudnn_frontend"
cp -r "$fe_inc" "$tp/cudnn_frontend/include"
if [ -n "$fe_lic" ]; then
  # shellcheck disable=SC2086
  cp $fe_lic "$tp/cudnn_frontend/"
fi
[ -f "$tp/cudnn_frontend/include/cudnn_frontend.h" ] || { echo "device_prepare: no cudnn_frontend.h in $fe_inc" >&2; exit 1; }

# OpenBLAS and the runtime libraries it needs beyond glibc and libgomp (which come with gcc).
mkdir -p "$stage/openblas/lib" "$stage/openblas/include"
cp -L "$blas_dir/libopenblas.so.0" "$stage/openblas/lib/"
ln -s libopenblas.so.0 "$stage/openblas/lib/libopenblas.so"
for lib in libgfortran.so.5 libquadmath.so.0; do
  path=$(ldd "$blas_dir/libopenblas.so.0" | awk -v l="$lib" '$1 == l { print $3 }')
  [ -n "$path" ] && cp -L "$path" "$stage/openblas/lib/"
done
cp "$blas_inc/cblas.h" "$blas_inc/openblas_config.h" "$stage/openblas/include/"

# zlib, zstd and libcrypto: headers and shared libraries (with unversioned links for the linker).
mkdir -p "$stage/sys/lib" "$stage/sys/include"
cp /usr/include/zlib.h /usr/include/zconf.h /usr/include/zstd.h /usr/include/zstd_errors.h \
  "$stage/sys/include/"
cp -r /usr/include/openssl "$stage/sys/include/"
cp -r /usr/include/x86_64-linux-gnu/openssl/. "$stage/sys/include/openssl/"
for lib in libz.so.1 libzstd.so.1 libcrypto.so.3; do
  cp -L "/usr/lib/x86_64-linux-gnu/$lib" "$stage/sys/lib/"
  ln -s "$lib" "$stage/sys/lib/${lib%%.so.*}.so"
done
tar -cJf "$tp/deps.tar.xz" -C "$stage" openblas sys

# The GPT-2 rank file, for the training-curve check's `finegpt prepare` (build/assets: setup.sh).
mkdir -p "$tp/assets"
cp build/assets/gpt2.tiktoken "$tp/assets/" 2>/dev/null ||
  { echo "device_prepare: build/assets/gpt2.tiktoken is missing: run scripts/setup.sh first" >&2; exit 1; }

cat > "$tp/README" <<EOF
Made by scripts/device_prepare.sh on $(date -u +%Y-%m-%d) from Debian $(cat /etc/debian_version):
googletest $(dpkg-query -W -f='${Version}' googletest), nlohmann-json3-dev $(dpkg-query -W -f='${Version}' nlohmann-json3-dev),
libopenblas0-openmp $(dpkg-query -W -f='${Version}' libopenblas0-openmp), nvidia-cudnn-frontend $fe_version (from $fe_from).
Not tracked by git; carried to the GPU machine.
EOF
grep -qx '/third_party/' .gitignore 2>/dev/null || echo "device_prepare: note: third_party/ should be ignored (.gitignore)"
echo "device_prepare: $(du -sh "$tp" | cut -f1) in $tp/"
