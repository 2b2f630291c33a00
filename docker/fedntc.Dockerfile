# fedntc image with the app's dependencies, for SuperNodes (clients) and the ServerApp
# executor next to the official SuperLink image. One file, two variants:
#   CPU : docker build -f docker/fedntc.Dockerfile -t fedntc:cpu .
#   CUDA: docker build -f docker/fedntc.Dockerfile --build-arg TORCH_INDEX=https://pypi.org/simple -t fedntc:cuda .
# (PyPI's x86_64 torch wheels bundle the CUDA runtime; the host needs the NVIDIA driver and
# the NVIDIA container toolkit.)
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    FLWR_TELEMETRY_ENABLED=0 \
    FLWR_DISABLE_UPDATE_CHECK=1 \
    FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1 \
    FEDNTC_HOME=/state \
    FEDNTC_MODELS=/opt/fedntc/models

WORKDIR /opt/fedntc
RUN pip install --index-url "${TORCH_INDEX}" "torch==2.14.1" "torchvision==0.29.1"
COPY pyproject.toml README.md ./
COPY common ./common
COPY client ./client
COPY server ./server
COPY codec ./codec
COPY launch ./launch
COPY study ./study
COPY pretrain ./pretrain
COPY conf ./conf
# base weights for model.init=base: Flower's app bundle carries code only
COPY models ./models
RUN pip install .

RUN useradd --create-home --uid 1000 flwr && mkdir -p /data /state && chown flwr /state
USER 1000
WORKDIR /home/flwr
ENTRYPOINT ["flower-supernode"]
