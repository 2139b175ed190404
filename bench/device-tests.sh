#!/usr/bin/env bash
# The model tests on a lent GPU machine (`run` tool): its own image has torch, torchvision and
# transformers but cannot install the lock, so PyAV and num2words come as wheels in .whl/ (carried,
# git-ignored) and snakemake.utils.validate as a stand-in that fills the schema's defaults
# (.whl/shim). Arguments go to pytest: test files and a -k expression that leaves out the tests
# running Snakemake itself. Results: bench/results/device-h200-*.md.
# IMAGE_TRANSFORMERS=1: the image's own transformers (and hub) instead of the lock's wheels.
set -u
site=/tmp/site wheels=(.whl/*.whl)
if [ "${IMAGE_TRANSFORMERS:-0}" = 1 ]; then
  site=/tmp/site-image wheels=(.whl/av-*.whl .whl/num2words-*.whl)
fi
pip install -q --no-deps --target "$site" "${wheels[@]}" 2>&1 | grep -v "root' user" | tail -1
export PYTHONPATH=$site:$PWD/.whl/shim:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import sys, torch; print(sys.version.split()[0], torch.__version__, 'cuda', torch.cuda.is_available())"
for m in transformers diffusers torchvision cv2 numpy pandas pyarrow scenedetect rapidocr_onnxruntime xdist; do
  python3 -c "import $m; print('$m', getattr($m, '__version__', 'present'))" 2>&1 | tail -1
done
python3 -m pytest -q -n 8 -p no:cacheprovider -o addopts="" -W ignore "$@" 2>&1 | grep -v "^bringing up" | tail -40
