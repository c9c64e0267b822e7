# syntax=docker/dockerfile:1
# The infmon operator image: a static (musl) release build of the `infmon` binary on distroless
# `static`, running as the non-root user 65532. Build: `docker build -t infmon:dev .`
# (see "Container image" in the README). The default command is the operator, `infmon run`; the
# same image runs `infmon check`/`render`/`validate` by passing those as arguments.

ARG RUST_VERSION=1.89

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
# musl-tools follows the base image's Debian release; pinning its version would break rebuilds.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The musl target of the build machine's architecture (x86_64 or aarch64).
RUN rustup target add "$(uname -m)-unknown-linux-musl"
COPY . .
# Cargo.toml's release profile: LTO, one codegen unit, opt-level "z", stripped, panic=abort.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(uname -m)-unknown-linux-musl" \
    && cargo build --release --locked --bin infmon --target "$target" \
    && cp "target/$target/release/infmon" /infmon

FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.title="infmon" \
      org.opencontainers.image.description="Kubernetes operator for complete, verified observability of LLM inference services" \
      org.opencontainers.image.source="https://github.com/infmon/infmon" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /infmon /usr/local/bin/infmon
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/infmon"]
CMD ["run"]
