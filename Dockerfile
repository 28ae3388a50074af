# syntax=docker/dockerfile:1
# One image with every Easel binary: gateway (the default command),
# persister and loadtest. Non-root, Debian slim runtime.
#
#   docker build -t easel .
#   docker run -e EASEL_DEV=true -p 8080:8080 easel          # standalone gateway
#   docker compose -f deploy/docker-compose.yml up --build  # the full stack

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# Debug info is for profiling on developers' machines; the image drops it.
ENV CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=debuginfo
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p gateway -p persister -p loadtest \
 && mkdir -p /out \
 && cp target/release/gateway target/release/persister target/release/loadtest /out/

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin easel
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
# Clients on 8080; probes and metrics on 9090 (both gateway and persister).
ENV EASEL_LISTEN=0.0.0.0:8080 \
    EASEL_ADMIN_LISTEN=0.0.0.0:9090 \
    EASEL_LOG_FORMAT=json
EXPOSE 8080 9090
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/gateway"]
