# hazard-gateway: one image for the gateway, the simulators and the alarm console.
#   docker build -t hazard-gateway .
#   docker run --rm hazard-gateway hazardgw check -c hazardgw/examples/site.yaml
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies and the packages first, so editing the site files does not reinstall them.
COPY pyproject.toml README.md ./
COPY fieldmodel ./fieldmodel
COPY gateway ./gateway
COPY rules ./rules
COPY simulators ./simulators
COPY console ./console
COPY hazardgw ./hazardgw
RUN pip install ".[platform]" \
    && useradd --system --create-home --home-dir /var/lib/hazardgw hazardgw

COPY deploy ./deploy
COPY dashboards ./dashboards

# The outbox lives in this volume: a site file without outbox.path keeps it in $STATE_DIRECTORY.
ENV STATE_DIRECTORY=/var/lib/hazardgw
VOLUME ["/var/lib/hazardgw"]
USER hazardgw

CMD ["hazardgw", "--help"]
