# Multi-stage build: compile in the Rust image, run in a slim Debian with git, CA certificates and
# bubblewrap (the agent sandbox: docs/security.md).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# `demo` (github-sim, for `foreman demo`) is a development feature: the image runs `serve` only.
RUN cargo build --release --locked --no-default-features --bin foreman

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates bubblewrap nodejs npm \
 && npm install -g @anthropic-ai/claude-code@2.1.329 \
 && apt-get purge -y npm && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* /root/.npm \
 && useradd --create-home --uid 10001 foreman \
 && mkdir /data && chown foreman /data
COPY --from=build /src/target/release/foreman /usr/local/bin/foreman
COPY --chmod=755 deploy/entrypoint.sh /usr/local/bin/foreman-entrypoint
COPY prompts /app/prompts
WORKDIR /app
ENV FOREMAN_DATA_DIR=/data FOREMAN_LISTEN=0.0.0.0:3000 HOME=/home/foreman
EXPOSE 3000
# Starts as root only to hand a freshly mounted (root-owned) volume to `foreman`, then runs Foreman as
# `foreman` (uid 10001) with every capability dropped: deploy/entrypoint.sh.
ENTRYPOINT ["foreman-entrypoint"]
CMD ["serve"]
