/**
 * The contract's shapes, from the types generated out of api-spec/portalis.yaml
 * (src/server/generated/api.ts): what the presenters return and what the handlers read. The driver
 * (src/driver) never sees them; the presenters and handlers translate at the edge.
 */
import type { Connector } from '../driver/model.ts';
import type { components } from './generated/api.ts';

/** A schema of the document's `components/schemas`, as the wire carries it. */
export type Schema<N extends keyof components['schemas']> = components['schemas'][N];

/**
 * The spec's connector as the driver's type, which differs in one field: the spec admits `ip: null`
 * (os-brick's, for a host it finds no address on) where the driver's Connector says `ip?: string`.
 * The driver keeps the connector as given and never reads `ip`, so the value passes unchanged.
 */
export const asConnector = (c: Schema<'Connector'>): Connector => c as Connector;
