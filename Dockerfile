# incident-operator container image: a static binary on distroless, running as a non-root user.
#   docker build -t incident-operator:dev .
# Multi-stage: the builder compiles a fully static (musl) binary; the final image holds only that
# binary, CA certificates and the non-root user of distroless/static.
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin incident-operator \
 && cp target/x86_64-unknown-linux-musl/release/incident-operator /incident-operator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /incident-operator /incident-operator
# 65532 is distroless' "nonroot"; numeric so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/incident-operator", "run"]
