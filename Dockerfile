# One image for the four services (and MLflow's UI); the command picks one:
#   docker run -p 5001:5001 mlops-microservices serve ml
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first, in their own layer: a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir mlops && touch mlops/__init__.py \
    && pip install . \
    && pip uninstall -y mlops-microservices \
    && rm -rf mlops

COPY mlops ./mlops
RUN pip install --no-deps . \
    && rm -rf mlops build ./*.egg-info

RUN useradd --create-home --uid 1000 mlops \
    && mkdir /data && chown mlops:mlops /data
USER mlops

# Services listen on every interface of the container; data (SQLite by default) under /data.
ENV MLOPS_HOST=0.0.0.0 \
    MLOPS_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 5000 5001 5002 5003 5004

ENTRYPOINT ["mlops"]
CMD ["serve", "simulator"]
