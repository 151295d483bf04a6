# One image for the three programs: `serve`, `sim` and `agent` (the agent needs nvme-cli and
# root on a real host; the compose stack runs only the service and the simulator).
FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY src ./src
COPY api-spec ./api-spec
COPY db ./db
ENTRYPOINT ["node", "bin/portalis.mjs"]
CMD ["serve"]
