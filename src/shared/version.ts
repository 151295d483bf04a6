/**
 * This release's version, the one in package.json and CHANGELOG.md (a unit test checks all three):
 * the service's `driver_version`, and what the agent sends with each request (`x-portalis-agent-version`).
 */
export const VERSION = '0.2.0';
