# chatapi-bridge as a container image.
#
#   docker build -t chatapi-bridge .
#   docker run --rm -p 3000:3000 chatapi-bridge          # built-in emulator and demo page
#   docker run --rm -p 3000:3000 \
#     -e UPSTREAM_URL=https://bot.jaicp.com/chatapi -e CHATAPI_TOKEN=… -e TICKET_SECRET=… \
#     chatapi-bridge
#
# Every setting is an environment variable (README.md, docs/operations.md).
# The npm cache mounts need BuildKit, the default builder since Docker 23.
# test/service/image.test.ts reads this file and repeats the runtime stage without a
# container engine: keep the two in step.

ARG NODE_VERSION=26

# ---- build: dev dependencies and the TypeScript compiler ----
FROM node:${NODE_VERSION}-trixie-slim AS build
WORKDIR /app
# The SDK is a workspace (packages/client): npm ci needs its package.json to link it.
COPY package.json package-lock.json ./
COPY packages/client/package.json ./packages/client/
# No install scripts: none of the dependencies has one, and the workspace's
# prepare would build the SDK before its sources are here; `npm run build` does.
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY packages/client/tsconfig.json ./packages/client/
COPY packages/client/src ./packages/client/src
COPY src ./src
RUN npm run build

# ---- runtime: production dependencies and the compiled server only ----
FROM node:${NODE_VERSION}-trixie-slim AS runtime
LABEL org.opencontainers.image.title="chatapi-bridge" \
      org.opencontainers.image.description="Realtime WebSocket bridge for the Tovie Platform Chat API (JAICP, Aimylogic)" \
      org.opencontainers.image.licenses="MIT"
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/client/package.json ./packages/client/
# No install scripts: no production dependency needs one, and none may run code at build time.
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --ignore-scripts --no-audit --no-fund
COPY --from=build /app/dist ./dist
# The SDK's build: the server imports it, and serves it to browsers at /sdk/.
COPY --from=build /app/packages/client/dist ./packages/client/dist
# The demo page (on with the built-in emulator, or DEMO_PAGE=true) is served
# from the sources' own folder: tsc does not copy HTML and CSS to dist/.
COPY --from=build /app/src/demo ./src/demo

# The files stay owned by root and read-only to the process; it writes nothing
# to disk, so the root filesystem can be mounted read-only.
ENV HOST=0.0.0.0 PORT=3000 NODE_ENV=production
# The base image's "node" user, by number so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 3000

# Liveness only: /readyz turns 503 during a drain, which is no reason to kill
# the container. No curl in slim images, so node asks. It assumes HOST is
# 0.0.0.0 (or a wildcard); a bridge bound to one other address needs another check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# SIGTERM starts the drain (sockets closed with 1012 over DRAIN_MS, exit 0);
# a second signal exits at once. Node is PID 1 and handles both itself, so
# the command is the exec form, never `npm start` or a shell. `docker stop`
# waits 10 s by default, no more than SHUTDOWN_TIMEOUT_MS: run with
# --stop-timeout 15 (Kubernetes: terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
CMD ["node", "dist/server.js"]
