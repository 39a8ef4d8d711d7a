# The CPU image: web, webhooks, beat, and the model worker on machines without a GPU (the bundled SmolLM2 or any
# local checkpoint). GPU workers use Dockerfile.cuda, the same app with the CUDA build of torch.
FROM python:3.12-slim
# PyPI's Linux torch wheel is the CUDA build (gigabytes of CUDA libraries); the CPU build comes from this index.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 AIGC_MODEL_CACHE_DIR=/data/models
WORKDIR /app
COPY requirements/ requirements/
# torch first, from its index: requirements/worker.txt pins the same version, which the +cpu build satisfies.
RUN pip install "torch==2.13.0" --index-url ${TORCH_INDEX} \
 && pip install -r requirements/worker.txt \
 && pip install --no-deps -r requirements/model.txt
COPY . .
RUN DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput
# Non-root; /data/models is the converted-weights cache (a volume in docker-compose.yml).
RUN useradd --create-home app && mkdir -p /data/models && chown -R app /data /app/var
USER app
EXPOSE 8000
# Plain HTTP, for a TLS-terminating proxy in front: run with DJANGO_BEHIND_TLS_PROXY=1 (docs/operations.md).
CMD ["python", "-m", "uvicorn", "aigc_site.asgi:application", "--host", "0.0.0.0", "--port", "8000", \
     "--lifespan", "off"]
