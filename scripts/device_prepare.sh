#!/usr/bin/env bash
# Run HERE (a Debian machine with scripts/setup.sh's packages), before a GPU run: fills the ignored
# folder third_party/ with what scripts/device_check.sh needs on the GPU machine, which has nvcc,
# CMake, ninja and PyTorch but no Debian packages and no network:
#   third_party/googletest/        GoogleTest sources (Debian's googletest, built there)
#   third_party/include/nlohmann/  nlohmann/json, header only (Debian's nlohmann-json3-dev)
#   third_party/deps.tar.xz        x86-64 libraries with their headers: openblas/ (OpenMP build,
#                                  cblas.h and the Fortran runtime it links, for the CPU reference
#                                  ops the CUDA tests call) and sys/ (zlib, zstd and OpenSSL's
#                                  libcrypto, which the library links for its input readers and
#                                  the tokenizer's hash checks)
# About 9 MB in all. Licenses: GoogleTest BSD-3, nlohmann/json MIT, OpenBLAS BSD-3, libgfortran and
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

# OpenBLAS and the runtime libraries it needs beyond glibc and libgomp (which come with gcc).
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
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

cat > "$tp/README" <<EOF
Made by scripts/device_prepare.sh on $(date -u +%Y-%m-%d) from Debian $(cat /etc/debian_version):
googletest $(dpkg-query -W -f='${Version}' googletest), nlohmann-json3-dev $(dpkg-query -W -f='${Version}' nlohmann-json3-dev),
libopenblas0-openmp $(dpkg-query -W -f='${Version}' libopenblas0-openmp). Not tracked by git; carried to the GPU machine.
EOF
grep -qx '/third_party/' .gitignore 2>/dev/null || echo "device_prepare: note: third_party/ should be ignored (.gitignore)"
echo "device_prepare: $(du -sh "$tp" | cut -f1) in $tp/"
