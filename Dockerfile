# syntax=docker/dockerfile:1
# scopegate: build with the dev toolchain, run with production dependencies only, as a non-root user.
#   docker build -t scopegate .
#   docker run -p 8080:8080 -p 9090:9090 -e SCOPEGATE_ISSUER=https://tenant.example.com/ \
#     -e SCOPEGATE_AUDIENCE=https://todo.api -e SCOPEGATE_UPSTREAM=http://api:3000 scopegate
#   or mount a config of your own: -v "$PWD/my.yaml:/etc/scopegate/scopegate.yaml:ro"
# test/ops/container-files.test.ts checks this file against the gateway's defaults.
ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: every dependency (TypeScript), then dist/
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies (no pino-pretty: logs are JSON lines) and the build
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    SCOPEGATE_CONFIG=/etc/scopegate/scopegate.yaml
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY config ./config
# The Envoy ext_authz protos, loaded at start (proto/README.md).
COPY proto ./proto
# The default config is the production starting point, set through SCOPEGATE_* variables; mount your own over it.
COPY config/scopegate.yaml /etc/scopegate/scopegate.yaml
# `node` (uid 1000) comes with the official image; nothing here needs root.
USER node
# proxy listener, admin listener (/healthz, /readyz, /metrics, /decisions/*, /.well-known/jwks.json)
EXPOSE 8080 9090
# SIGTERM drains requests in flight (server.shutdownTimeout, 10s by default): give it a longer stop timeout.
STOPSIGNAL SIGTERM
# No curl in the slim image: node's own fetch asks the admin listener whether the process is alive.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9090/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["serve"]
