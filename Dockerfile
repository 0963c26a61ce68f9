# rio: the orchestrator image (scheduler daemon and command line). nmap is the only system tool
# it needs; everything else is the Python package.
FROM python:3.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends nmap \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/rio
COPY pyproject.toml README.md ./
COPY orchestrator ./orchestrator
COPY probes ./probes
COPY scopes ./scopes
COPY policies ./policies
RUN pip install --no-cache-dir .
RUN useradd --create-home --uid 10001 rio && mkdir -p /var/lib/rio && chown rio /var/lib/rio
USER rio
ENV RIO_HOME=/var/lib/rio
ENTRYPOINT ["rio"]
CMD ["serve"]
