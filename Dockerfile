# One image for the three programs: `serve`, `sim` and `agent` (the agent needs nvme-cli and
# root on a real host; the compose stack runs only the service and the simulator).
#
# The build stage compiles the sources (`npm ci` runs the `prepare` script: tsc to dist/) and then
# drops the development dependencies; the image gets dist/, bin/ and the production
# node_modules only: no TypeScript sources, no tests, no test doubles (the build leaves them out).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY bin ./bin
COPY src ./src
COPY db ./db
COPY api-spec ./api-spec
RUN npm ci --no-audit --no-fund && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production PORTALIS_DATA_DIR=/var/lib/portalis
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/bin ./bin
COPY --from=build /app/dist ./dist
# The image's `node` user (uid 1000) runs the programs; the data directory (the generated admin
# token, an embedded PostgreSQL when DATABASE_URL is unset) is its own.
RUN mkdir -p /var/lib/portalis && chown node:node /var/lib/portalis
USER node
ENTRYPOINT ["node", "bin/portalis.mjs"]
CMD ["serve"]
