/**
 * The contract's shapes, from the types generated out of api-spec/portalis.yaml
 * (src/server/generated/api.ts): what the presenters return and what the handlers read. The driver
 * (src/driver) never sees them; the presenters and handlers translate at the edge.
 */
import type { components } from './generated/api.ts';

/** A schema of the document's `components/schemas`, as the wire carries it. */
export type Schema<N extends keyof components['schemas']> = components['schemas'][N];
