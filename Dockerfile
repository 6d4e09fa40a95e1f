# syntax=docker/dockerfile:1.7
#
# Headroom's production image: one `headroom` binary (web app, API, workers), the
# hydration bundle it serves, the ONNX Runtime library it loads, and the models.
#
#   DOCKER_BUILDKIT=1 docker build -t headroom .
#   docker run --rm -p 127.0.0.1:3000:3000 -v headroom-data:/var/lib/headroom headroom
#
# compose.yaml runs the same image against PostgreSQL.

ARG RUST_IMAGE=rust:1-bookworm
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------
# Builder: the WASM bundle (hydrate) and the server binary (ssr).
# ---------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS builder

# Must equal the wasm-bindgen version in Cargo.lock (the crate is pinned with `=`).
ARG WASM_BINDGEN_VERSION=0.2.130
# wasm-opt from npm: Debian's binaryen (v108) silently breaks the module.
ARG BINARYEN_VERSION=132.0.0

RUN rustup target add wasm32-unknown-unknown

RUN apt-get update \
    && apt-get install -y --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*

RUN npm install -g "binaryen@${BINARYEN_VERSION}" \
    && wasm-opt --version

# No --locked: with it cargo asks for a pinned transitive version the registry lacks.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    cargo install wasm-bindgen-cli --version "${WASM_BINDGEN_VERSION}" \
    && wasm-bindgen --version

WORKDIR /src
COPY . .

# LEPTOS_OUTPUT_NAME must stay unset while compiling: the server names its bundle
# "headroom" itself, and with the variable unset Leptos links /pkg/headroom.js and
# /pkg/headroom_bg.wasm, which is what wasm-bindgen writes.
#
# wasm-opt features: exactly those rustc's wasm32-unknown-unknown target enables
# by default (and wasm-bindgen's reference-types output needs), not --all-features,
# so the bundle runs in every browser that runs rustc's own output.
#
# `target` is a cache mount, so everything the runtime needs is copied to /out.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,id=headroom-target \
    set -eux; \
    unset LEPTOS_OUTPUT_NAME; \
    CARGO_TARGET_DIR=target/wasm cargo build --locked -p headroom-frontend --lib \
        --profile wasm-release --target wasm32-unknown-unknown \
        --no-default-features --features hydrate; \
    rm -rf target/site; \
    mkdir -p target/site/pkg; \
    wasm-bindgen target/wasm/wasm32-unknown-unknown/wasm-release/headroom_frontend.wasm \
        --target web --out-dir target/site/pkg --out-name headroom --no-typescript; \
    wasm-opt -Oz \
        --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
        --enable-mutable-globals --enable-multivalue --enable-reference-types \
        target/site/pkg/headroom_bg.wasm -o target/site/pkg/headroom_bg.wasm; \
    cp style/main.css target/site/pkg/headroom.css; \
    cargo build --locked --release -p headroom-server; \
    mkdir -p /out; \
    cp target/release/headroom /out/headroom; \
    cp -r target/site /out/site; \
    ls -l /out /out/site/pkg

# ---------------------------------------------------------------------------
# ONNX Runtime: the shared library from the PyPI wheel (the `ort` crate loads it
# at run time through ORT_DYLIB_PATH).
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS onnxruntime

ARG ONNXRUNTIME_VERSION=1.31.1

RUN pip install --no-cache-dir --no-deps --target /opt/ort "onnxruntime==${ONNXRUNTIME_VERSION}" \
    && cp "/opt/ort/onnxruntime/capi/libonnxruntime.so.${ONNXRUNTIME_VERSION}" /opt/ \
    && rm -rf /opt/ort

# ---------------------------------------------------------------------------
# Runtime
# ---------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime

ARG ONNXRUNTIME_VERSION=1.31.1

# iproute2: `tc`, for the cgroup provider's bandwidth caps (HEADROOM_CGROUP_NET_DEVICE).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libstdc++6 iproute2 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 headroom \
    && useradd --system --uid 10001 --gid headroom --home-dir /var/lib/headroom \
        --no-create-home --shell /usr/sbin/nologin headroom \
    && mkdir -p /var/lib/headroom \
    && chown headroom:headroom /var/lib/headroom

COPY --from=builder /out/headroom /usr/local/bin/headroom
COPY --from=builder /out/site /srv/headroom/site
COPY --from=onnxruntime /opt/libonnxruntime.so.${ONNXRUNTIME_VERSION} /usr/local/lib/libonnxruntime.so.${ONNXRUNTIME_VERSION}
COPY models/ /srv/headroom/models/

ENV HEADROOM_ADDR=0.0.0.0:3000 \
    HEADROOM_DATA_DIR=/var/lib/headroom \
    HEADROOM_SITE_DIR=/srv/headroom/site \
    HEADROOM_MODELS_DIR=/srv/headroom/models \
    ORT_DYLIB_PATH=/usr/local/lib/libonnxruntime.so.${ONNXRUNTIME_VERSION}

USER headroom:headroom
WORKDIR /var/lib/headroom
VOLUME ["/var/lib/headroom"]
EXPOSE 3000

# `headroom healthcheck` GETs /healthz on HEADROOM_ADDR and exits 0 or 1 (no curl here).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["headroom", "healthcheck"]

ENTRYPOINT ["headroom"]
CMD ["serve"]
