"""Real images that ship inside scikit-image, grouped into statistically different domains.

No download happens: only files inside the installed ``skimage/data`` folder are read. Each
client gets one domain; the last image of a domain is held out for testing.
"""

from __future__ import annotations

from pathlib import Path

import skimage.data

DOMAINS: dict[str, tuple[str, ...]] = {
    "photos": ("astronaut.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "coffee.png"),
    "textures": ("brick.png", "grass.png", "gravel.png"),
    "grayscale": ("camera.png", "moon.png", "page.png", "text.png", "coins.png"),
    "science": ("hubble_deep_field.jpg", "ihc.png", "cell.png", "retina.jpg"),
}


def data_dir() -> Path:
    """Folder of the images bundled with scikit-image."""
    return Path(skimage.data.__file__).parent


def domain_files(client_id: int, num_clients: int) -> tuple[str, list[Path], list[Path]]:
    """Domain name, train paths and test paths for one client."""
    if num_clients > len(DOMAINS):
        raise ValueError(
            f"data.source=bundled has {len(DOMAINS)} domains ({', '.join(DOMAINS)}); "
            f"data.num_clients={num_clients} is too many"
        )
    name = list(DOMAINS)[client_id]
    paths = [data_dir() / f for f in DOMAINS[name]]
    return name, paths[:-1], paths[-1:]
