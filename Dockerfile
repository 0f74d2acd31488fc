# Multi-stage build: compile in the Rust image, run in a slim Debian with git and CA certificates.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# `demo` (github-sim, for `foreman demo`) is a development feature: the image runs `serve` only.
RUN cargo build --release --locked --no-default-features --bin foreman

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates nodejs npm \
 && npm install -g @anthropic-ai/claude-code@2.1.329 \
 && apt-get purge -y npm && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* /root/.npm \
 && useradd --create-home --uid 10001 foreman \
 && mkdir /data && chown foreman /data
COPY --from=build /src/target/release/foreman /usr/local/bin/foreman
COPY prompts /app/prompts
USER foreman
WORKDIR /app
ENV FOREMAN_DATA_DIR=/data FOREMAN_LISTEN=0.0.0.0:3000
EXPOSE 3000
ENTRYPOINT ["foreman"]
CMD ["serve"]
