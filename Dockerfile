# The CPU image: web, webhooks, beat, the relay worker of a remote alias, and the model worker on machines without
# a GPU (the bundled SmolLM2 GGUF through llama.cpp, or any local checkpoint). GPU workers use Dockerfile.cuda, the
# same app with the CUDA build of torch.
FROM python:3.12-slim
# PyPI's Linux torch wheel is the CUDA build (gigabytes of CUDA libraries); the CPU build comes from this index.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# llama-cpp-python (requirements/llama.txt) is published as source only: pip compiles llama.cpp, about 6 minutes
# on 2 cores. By default that build is portable, for any x86-64 CPU with AVX2, FMA and F16C (2013 on), rather than
# tuned to the build machine (-march=native), which could stop with "illegal instruction" on another host. An image
# built on the host that runs it can use every instruction its CPU has (AVX-512 where there is one):
#   docker compose build --build-arg LLAMA_CMAKE_ARGS=-DGGML_NATIVE=ON
ARG LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 AIGC_MODEL_CACHE_DIR=/data/models
WORKDIR /app
COPY requirements/ requirements/
# torch first, from its index: requirements/worker.txt pins the same version, which the +cpu build satisfies.
# The compiler (build-essential: gcc, g++, make) exists only inside this one layer: installed, used by pip, purged,
# so the image carries none of it. CMake needs no apt package: scikit-build-core, llama-cpp-python's build backend,
# fetches it from PyPI into the build's own environment when the system has none. libgomp1 is installed by name,
# so that the purge keeps it: llama.cpp's CPU kernels run their threads through OpenMP.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential libgomp1 bubblewrap \
 && pip install "torch==2.13.0" --index-url ${TORCH_INDEX} \
 && CMAKE_ARGS="${LLAMA_CMAKE_ARGS}" pip install -r requirements/worker.txt \
 && pip install --no-deps -r requirements/model.txt \
 && apt-get purge -y --auto-remove build-essential \
 && rm -rf /var/lib/apt/lists/*
COPY . .
RUN DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput
# Non-root; /data/models is the converted-weights cache (a volume in docker-compose.yml).
RUN useradd --create-home app && mkdir -p /data/models && chown -R app /data /app/var
USER app
EXPOSE 8000
# Plain HTTP, for a TLS-terminating proxy in front: run with DJANGO_BEHIND_TLS_PROXY=1 (docs/operations.md).
CMD ["python", "-m", "uvicorn", "aigc_site.asgi:application", "--host", "0.0.0.0", "--port", "8000", \
     "--lifespan", "off"]
