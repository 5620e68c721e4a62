# syntax=docker/dockerfile:1
# stream-attendance: production image. Node 24 LTS, pinned; production dependencies only, which
# hold no Stream simulator, embedded Postgres, TypeScript compiler or loader (those are dev
# dependencies and tools/, neither of which is copied). Node strips the TypeScript types itself
# and writes nothing, so the image runs on a read-only root filesystem. Runs as the unprivileged
# `node` user, which can read the application but not change it. Postgres comes from DATABASE_URL
# (see docker-compose.yml and deploy/kubernetes/).

FROM node:24.21.0-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

FROM node:24.21.0-bookworm-slim AS runtime
ENV NODE_ENV=production \
    PORT=8080 \
    HOST=0.0.0.0
WORKDIR /app
# Copied as root (no --chown): files 644 and directories 755 owned by root, so a compromised
# process cannot rewrite the code or the migrations it runs. The service writes no files at all.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
USER node
EXPOSE 8080
# One health check for every command (bin/healthcheck.js reads which one PID 1 runs): `serve`
# answers GET /healthz on PORT; `worker` serves no HTTP, so it passes while its process is neither
# stopped nor a zombie and holds no session whose lease it failed to renew; one-shot commands pass.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "bin/healthcheck.js"]
# V8's young generation capped at 4 MiB semi-spaces (it grows to 16 MiB by default): archiving a
# 100,000-entry session, peak RSS 144.7–154.3 MiB against 154.4–185.4 MiB without the cap, rows/s
# within the rounds' spread, ~0.1 ms more CPU a page with four sessions at once (bench/RESULTS.md,
# 2026-12-01 08:38–08:50; the benches start the service with the flags written here). Outside the
# image, NODE_OPTIONS=--max-semi-space-size=4 does the same.
ENTRYPOINT ["node", "--max-semi-space-size=4", "bin/attendance.js"]
CMD ["serve"]
