#!/usr/bin/env bash
# The wheels benchmarks/gpu_session.sh carries to the device machine (Python 3.12,
# x86-64): the packages this project needs that the device image lacks. Run here, in the
# checkout's root; .whl/ is git-ignored through .git/info/exclude.
set -euo pipefail
mkdir -p .git/info .whl
grep -q "^/.whl/" .git/info/exclude 2>/dev/null || echo "/.whl/" >> .git/info/exclude
PLATFORMS="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
  --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any"
for pkg in grain==0.2.18 array_record==0.8.6 tensorflow-datasets==4.9.10 ml_collections==1.1.0 \
    tensorboardX==2.6.5 wfdb==4.3.1 pyEDFlib==0.1.42 dm-tree==0.1.10 simple-parsing==0.1.9 \
    immutabledict==4.3.1 termcolor==3.3.0 toml==0.10.2 openpyxl tensorflow-metadata \
    docstring-parser et-xmlfile googleapis-common-protos importlib_resources portpicker \
    soundfile; do
  # shellcheck disable=SC2086
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp $PLATFORMS -d .whl "$pkg"
done
python3 -m pip wheel -q --no-deps -w .whl promise==2.3  # an sdist only: built here
du -sh .whl
