# One image, either process: the API by default, the worker with
# `node apps/worker/dist/index.js`, migrations with `node packages/db/dist/migrate.cli.js latest`.
# Ships on Node 24 LTS (Node 20 reached end of life on 2026-04-30); CI runs the suite on both.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY apps/api/package.json apps/api/
COPY apps/worker/package.json apps/worker/
COPY packages/core/package.json packages/core/
COPY packages/db/package.json packages/db/
COPY packages/github-sim/package.json packages/github-sim/
COPY packages/pods/package.json packages/pods/
COPY packages/testing/package.json packages/testing/
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build

FROM node:24-bookworm-slim AS runtime
# git clones repositories in the worker. jemalloc replaces glibc's malloc: glibc's per-thread
# arenas kept the API's freed native memory (socket and parser buffers) resident, about 45 MB after
# `npm run bench`'s soak, at no cost in CPU per request (docs/performance.md, "Memory"). A bare
# soname in LD_PRELOAD is looked up in the standard library paths, on amd64 and arm64 alike.
RUN apt-get update && apt-get install -y --no-install-recommends git ca-certificates tini libjemalloc2 \
  && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000 CLONE_ROOT=/var/lib/portico/clones LD_PRELOAD=libjemalloc.so.2
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/apps/api/package.json apps/api/
COPY --from=build /app/apps/worker/package.json apps/worker/
COPY --from=build /app/packages/core/package.json packages/core/
COPY --from=build /app/packages/db/package.json packages/db/
COPY --from=build /app/packages/github-sim/package.json packages/github-sim/
COPY --from=build /app/packages/pods/package.json packages/pods/
COPY --from=build /app/packages/testing/package.json packages/testing/
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/apps/api/dist apps/api/dist
COPY --from=build /app/apps/worker/dist apps/worker/dist
COPY --from=build /app/packages/core/dist packages/core/dist
COPY --from=build /app/packages/db/dist packages/db/dist
COPY --from=build /app/packages/pods/dist packages/pods/dist
COPY --from=build /app/migrations/dist migrations/dist
RUN mkdir -p /var/lib/portico/clones && chown -R node:node /var/lib/portico
USER node
# A frontend build can be served by the API: mount it (e.g. -v ./dist:/srv/frontend:ro) and set
# STATIC_DIR=/srv/frontend.
EXPOSE 3000
ENTRYPOINT ["/usr/bin/tini", "--"]
# V8 sizes the young generation from the host's memory (up to 64 MB per semi-space on Node 24):
# collector headroom, not data. 8 MB keeps the API ~100 MB smaller at no measurable cost in
# throughput. --heap-growing-percent=30 starts a full collection when the old generation reaches
# 1.3× its live size instead of up to 2× (docs/performance.md, "Memory"). `npm run bench` runs
# the API with these flags.
CMD ["node", "--max-semi-space-size=8", "--heap-growing-percent=30", "apps/api/dist/server.js"]
