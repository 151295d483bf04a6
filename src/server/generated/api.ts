/**
 * Generated from api-spec/portalis.yaml by openapi-typescript (`npm run gen:types`); do not edit.
 * src/server/testing/api-types.test.ts fails when this file is not what the spec generates.
 */
export interface paths {
  '/': {
    /** The health dashboard (an HTML page; it asks for the admin token and keeps it in sessionStorage). */
    get: operations['getDashboard'];
  };
  '/ui/{file}': {
    /** The dashboard's script and style sheet, served by the service itself (no CDN). */
    get: operations['getDashboardAsset'];
  };
  '/metrics': {
    /** Prometheus metrics (text exposition format), with the admin token or PORTALIS_METRICS_TOKEN. */
    get: operations['getMetrics'];
  };
  '/healthz': {
    /** The process answers. */
    get: operations['getHealthz'];
  };
  '/readyz': {
    /**
     * The database and the storage backend are reachable.
     * @description Answers within 2 s whatever hangs: each check gets 1.5 s, side by side, and one that has not
     * answered by then is not ready (`not_ready` names it; its `timed_out` is true).
     */
    get: operations['getReadyz'];
  };
  '/openapi.json': {
    /** This document. */
    get: operations['getOpenApi'];
  };
  '/v1/volumes': {
    /**
     * Create a volume, empty, from a snapshot or as a clone (idempotent on id).
     * @description 201 when created, 200 when a volume with this id and the same parameters exists (a retry),
     *     409 `already_exists` when it exists with other parameters. `source` names an orchestrator
     *     snapshot or volume; 404 `snapshot_not_found`/`volume_not_found` when it does not exist,
     *     409 `snapshot_not_ready`/`volume_not_ready` when it is not available, 400 when `size_gb`
     *     is smaller than the source (larger grows the new volume). 409 `insufficient_capacity` when the
     *     backend has no room for `size_gb`.
     */
    post: operations['createVolume'];
  };
  '/v1/volumes/{id}': {
    parameters: {
      path: {
        /** @description The orchestrator's volume UUID. */
        id: components['parameters']['VolumeId'];
      };
    };
    /** Read a volume. */
    get: operations['getVolume'];
    /**
     * Delete a volume (idempotent; 204 also when it does not exist).
     * @description 409 `volume_in_use` while live attachments exist, unless `force=true` (then every host's
     *     access is revoked and every attachment detached first). 409 `volume_has_snapshots` while
     *     the volume has snapshots: delete them first (the backend would leave them behind).
     */
    delete: operations['deleteVolume'];
  };
  '/v1/volumes/{id}/initialize_connection': {
    parameters: {
      path: {
        /** @description The orchestrator's volume UUID. */
        id: components['parameters']['VolumeId'];
      };
    };
    /** Grant a host access and return the NVMe-oF connection info (idempotent). */
    post: operations['initializeConnection'];
  };
  '/v1/volumes/{id}/terminate_connection': {
    parameters: {
      path: {
        /** @description The orchestrator's volume UUID. */
        id: components['parameters']['VolumeId'];
      };
    };
    /** Remove a host's connection; revoke its access when no other attachment of it remains. */
    post: operations['terminateConnection'];
  };
  '/v1/volumes/{id}/extend': {
    parameters: {
      path: {
        /** @description The orchestrator's volume UUID. */
        id: components['parameters']['VolumeId'];
      };
    };
    /**
     * Grow a volume, also while attached (online); attached hosts' agents rescan.
     * @description Shrinking is a 400; the current size is a no-op 200. The volume's `size_gb` changes once the
     *     backend confirms the new size. On a failure the backend volume is read again: a resize that
     *     landed is a 200 with the new size, otherwise the volume stays `available` at its old size.
     *     A volume left `error` by an earlier failure is usable again when the backend shows it healthy.
     *     409 `insufficient_capacity` when the backend has no room for it.
     */
    post: operations['extendVolume'];
  };
  '/v1/volumes/{id}/snapshots': {
    parameters: {
      path: {
        /** @description The orchestrator's volume UUID. */
        id: components['parameters']['VolumeId'];
      };
    };
    /** The volume's snapshots, oldest first. */
    get: operations['listVolumeSnapshots'];
    /**
     * Snapshot a volume (idempotent on the snapshot id).
     * @description 201 when created, 200 when this snapshot of this volume with this name exists (a retry),
     *     409 `already_exists` when the id is taken by another volume or name. The backend name is
     *     `snapshot-<id>`.
     */
    post: operations['createSnapshot'];
  };
  '/v1/snapshots/{id}': {
    parameters: {
      path: {
        /** @description The orchestrator's snapshot UUID. */
        id: components['schemas']['Uuid'];
      };
    };
    /** Read a snapshot. */
    get: operations['getSnapshot'];
    /** Delete a snapshot (idempotent; 204 also when it does not exist). */
    delete: operations['deleteSnapshot'];
  };
  '/v1/capabilities': {
    /** Cinder's get_volume_stats; capacity figures cached for PORTALIS_CAPABILITIES_REFRESH_MS. */
    get: operations['getCapabilities'];
  };
  '/v1/attachments': {
    /** List attachments (a host token sees only its own host's). */
    get: operations['listAttachments'];
  };
  '/v1/attachments/{id}': {
    /** Read an attachment (a host token only its own host's). */
    get: operations['getAttachment'];
  };
  '/v1/attachments/{id}/events': {
    /**
     * An attachment's path-health history, newest first (a host token only its own host's).
     * @description One event per change of the agent's reported state or health, or of a path's controller or
     * ANA state, with the paths as reported. Kept `PORTALIS_EVENT_RETENTION_DAYS` (default 7).
     */
    get: operations['listAttachmentEvents'];
  };
  '/v1/hosts': {
    /** Hosts known to the service. */
    get: operations['listHosts'];
    /** Issue (or re-issue, revoking the old one) the agent token of a compute host. */
    post: operations['issueHostToken'];
  };
  '/v1/hosts/{nqn}': {
    parameters: {
      path: {
        /** @description The host's NQN. */
        nqn: components['parameters']['HostNqn'];
      };
    };
    /** Read a host. */
    get: operations['getHost'];
  };
  '/v1/hosts/{nqn}/token': {
    parameters: {
      path: {
        /** @description The host's NQN. */
        nqn: components['parameters']['HostNqn'];
      };
    };
    /** Revoke the host's agent token. */
    delete: operations['revokeHostToken'];
  };
  '/v1/hosts/{nqn}/secrets': {
    parameters: {
      path: {
        /** @description The host's NQN. */
        nqn: components['parameters']['HostNqn'];
      };
    };
    /** Where the host's in-band authentication (DH-HMAC-CHAP) secrets stand; never the secrets. */
    get: operations['getHostSecrets'];
    /**
     * Give the host its first secrets (or finish a rotation under way); a host that has them is left alone.
     * @description 200 when done, 202 while the rotation waits for the host's agent (every live path must
     * authenticate with the new generation). A backend failure answers 502/503/504 and the state keeps the step
     * and error; repeating the call resumes. 409 `auth_not_configured` without a secrets key; 503
     * `secrets_unreadable` when this replica's secrets key cannot open the stored secrets (another key sealed
     * them, or a row is damaged).
     */
    post: operations['ensureHostSecrets'];
  };
  '/v1/hosts/{nqn}/secrets/rotate': {
    parameters: {
      path: {
        /** @description The host's NQN. */
        nqn: components['parameters']['HostNqn'];
      };
    };
    /**
     * Rotate the host's secrets (two new generations), or resume the rotation under way.
     * @description One secret moves at a time: generation N+1 is a new host secret with the controller secret
     * in force, N+2 a new controller secret (Linux re-authenticates a controller on each secret it is given, so
     * each exchange must find a pair the target holds). Each generation is set at the backend, delivered to the
     * host's agent (with the previous pair while it moves), confirmed by the agent's reports
     * (`paths[].auth_generation`), then the previous pair is retired; N+2 is staged in the step that puts N+1
     * in force and retires N. 200 when finished, 202 while waiting for the agent; a failed step answers the
     * backend's error and is resumed by repeating the call. It leaves the old secret valid at a backend that
     * holds both pairs; LightOS holds one, and a step whose answer was lost may have replaced it (the host's
     * new connects are refused until the step succeeds). 503 `secrets_unreadable` when this replica's secrets
     * key cannot open the stored secrets. With `from_generation` (the generation in force when the caller
     * decided to rotate) a repeated call never starts a second rotation once that generation is no longer in
     * force.
     */
    post: operations['rotateHostSecrets'];
  };
  '/v1/health/multipath': {
    /**
     * The cluster-wide health matrix (volume × host) of live attachments, from the agents' reports.
     * @description Each cell is a live attachment's latest report. `health` is `optimal`, `degraded` or
     * `failed` as reported (an agent `error`, or no device on a live attachment, is `failed`), `unknown` when
     * the report is older than 180 s, `pending` before the first report or while the agent or the host
     * connects, `detached` when the host let go of the device of a live attachment (os-brick's
     * disconnect_volume before Cinder's attachment_delete). `summary` and `hosts` cover every cell that passes
     * the filters; `volumes` is one page of them (each with the worst state of its hosts).
     */
    get: operations['getMultipathHealth'];
  };
  '/v1/agent/register': {
    /**
     * (host token) The agent announces its connector; connector.nqn must be the token's host.
     * @description The host records the agent's version from `x-portalis-agent-version` (`agent_version`; null
     * for an agent older than 0.2.0, which does not send it).
     */
    post: operations['agentRegister'];
  };
  '/v1/agent/attachments': {
    /**
     * (host token) Long poll of what the host's agent must connect or tear down.
     * @description Answers at once when the host's version differs from `since` (or `since` is absent),
     * otherwise when something changes or after `wait` seconds. The token is checked again when the wait ends:
     * one revoked or replaced meanwhile gets a 401, never the host's list (revoking or re-issuing a token ends
     * the host's waiting polls at once).
     */
    get: operations['agentListAttachments'];
  };
  '/v1/agent/attachments/{id}/report': {
    /** (host token) The agent reports an attachment's state, device and path health. */
    put: operations['agentReport'];
  };
}
export type webhooks = Record<string, never>;
export interface components {
  schemas: {
    DhchapPair: {
      generation: number;
      /** @description What the host proves (nvme connect --dhchap-secret). */
      host_secret: string;
      /** @description What the target proves back (--dhchap-ctrl-secret). */
      ctrl_secret: string;
    };
    HostSecretStatus: {
      host_nqn: string;
      /** @description The generation in force; 0 before the first secrets. */
      generation: number;
      next_generation: number | null;
      /**
       * @description `none`: no secrets yet; `idle`: nothing under way; `staged`: the new pair is stored, not
       * yet at the backend; `at_backend`: the backend accepts it, the agent has it, paths are moving;
       * `confirmed`: every live path moved, the old pair is still to retire.
       * @enum {string}
       */
      step: 'none' | 'idle' | 'staged' | 'at_backend' | 'confirmed';
      /**
       * @description `backend`: a backend step to retry (see last_error); `agent`: paths still on the old
       * pair, or, at `staged`, a device of the host without a live path (last_error `staged: host_paths_down:
       * …`): the backend keeps the old pair until one is back.
       * @enum {string|null}
       */
      waiting_for: 'backend' | 'agent' | null;
      last_error: string | null;
      updated_at: string | null;
    };
    Host: {
      nqn: string;
      name: string;
      connector: Record<string, unknown> | null;
      token_issued_at: string | null;
      registered_at: string | null;
      last_seen_at: string | null;
      /** @description The version the host's agent sent when it last registered; null before 0.2.0. */
      agent_version?: string | null;
    };
    PathStatus: {
      controller: string | null;
      address: string;
      port: number;
      transport: string;
      state: string;
      ana_state: string | null;
      /**
       * @description The generation of the host's DH-HMAC-CHAP secret this controller holds (its sysfs
       * `dhchap_secret`, which Linux uses at every (re-)authentication; against a target that requires
       * authentication, the one it authenticated with); null when it holds none or one the agent does not
       * know. A rotation waits until every live path reports the new one.
       */
      auth_generation?: number | null;
    };
    AgentReport: {
      /**
       * @description `awaiting_host` and `host_detached` are for host-connected attachments only: the host
       * has not connected the device yet; the host let go of it while the attachment is still live.
       * @enum {string}
       */
      state:
        | 'connecting'
        | 'connected'
        | 'disconnecting'
        | 'disconnected'
        | 'error'
        | 'awaiting_host'
        | 'host_detached';
      device_path: string | null;
      /**
       * @description The block device's size. At most 2^53 - 1 (8 PiB): larger values lose precision in JSON
       * and would overflow the stored bigint past 2^63; they are a 400 naming size_bytes.
       */
      size_bytes: number | null;
      /** @enum {string|null} */
      health: 'optimal' | 'degraded' | 'failed' | null;
      paths: components['schemas']['PathStatus'][];
      error: {
        code: string;
        message: string;
      } | null;
    };
    /** @enum {string} */
    CellHealth: 'optimal' | 'degraded' | 'failed' | 'unknown' | 'pending' | 'detached';
    HealthCounts: {
      optimal: number;
      degraded: number;
      failed: number;
      unknown: number;
      pending: number;
      detached: number;
    };
    /**
     * @description Who connects the attachment's device on its host, decided at its first initialize_connection
     * and kept: `agent` for a connector from `portalis agent connector-properties` (it carries `dm_multipath`),
     * the Portalis agent connects, heals and tears down; `host` for any other (os-brick's, under Nova), the
     * host connects and disconnects, and the host's agent, if any, only reports and adds the paths that
     * live-path changes bring.
     * @enum {string}
     */
    ConnectedBy: 'agent' | 'host';
    /**
     * @description Host-connected attachments: the portals handed to the host at its last initialize_connection
     * (the ones it connects); null for agent-connected ones.
     */
    HostPortals: components['schemas']['PortalTuple'][] | null;
    HealthCell: {
      host_nqn: string;
      host: string;
      attachment_id: string;
      /** @description The agent's reported state; null before the first report. */
      state: string | null;
      health: components['schemas']['CellHealth'];
      connected_by: components['schemas']['ConnectedBy'];
      /** @enum {string|null} */
      reported_health: 'optimal' | 'degraded' | 'failed' | null;
      /** @enum {string} */
      multipath_mode: 'native' | 'dm' | 'single';
      device_path: string | null;
      paths_total: number;
      paths_live: number;
      reported_at: string | null;
      /** @description Since when the cell has been in this health. */
      since: string;
      /** @description The host's agent has not contacted the service for 180 s. */
      host_stale: boolean;
      error: Record<string, unknown> | null;
    };
    HealthMatrix: {
      generated_at: string;
      summary: components['schemas']['HealthCounts'];
      /** @description Volumes (over every page) by the worst state of their cells. */
      volume_summary: components['schemas']['HealthCounts'];
      volumes: {
        volume_id: string;
        health: components['schemas']['CellHealth'];
        counts: components['schemas']['HealthCounts'];
        hosts: components['schemas']['HealthCell'][];
      }[];
      hosts: {
        host_nqn: string;
        host: string;
        health: components['schemas']['CellHealth'];
        counts: components['schemas']['HealthCounts'];
        last_seen_at: string | null;
        stale: boolean;
      }[];
      page: {
        offset: number;
        limit: number;
        total_volumes: number;
        total_cells: number;
        next_offset: number | null;
      };
    };
    AttachmentEvent: {
      id: number;
      at: string;
      from: {
        state: string | null;
        health: string | null;
      };
      to: {
        state: string;
        health: string | null;
      };
      paths: components['schemas']['PathStatus'][];
      error: Record<string, unknown> | null;
    };
    Uuid: string;
    /**
     * @description An NVMe Qualified Name (NVMe base spec 4.5): `nqn.yyyy-mm.<reverse domain>[:<string>]`,
     * printable ASCII, at most 223 bytes.
     */
    Nqn: string;
    Health: {
      /** @enum {string} */
      status: 'ok' | 'unavailable';
      /** @description The checks that failed or did not answer within 1.5 s (`database`, `backend`). */
      not_ready?: string[];
      checks?: {
        [key: string]: {
          ok: boolean;
          /** @description The check did not answer within 1.5 s. */
          timed_out?: boolean;
          error?: string;
        };
      };
    };
    Error: {
      error: {
        code: string;
        message: string;
        details?: Record<string, unknown>;
      };
    };
    /**
     * @description The dict os-brick's get_connector_properties returns. `nqn` and `host` are required; other
     * keys os-brick or the orchestrator adds (`system uuid`, `found_dsc`, `mountpoint`, `mode`, ...) are
     * accepted and kept.
     */
    Connector: {
      nqn: components['schemas']['Nqn'];
      host: string;
      nvme_hostid?: string;
      uuid?: string | null;
      ip?: string | null;
      host_ips?: string[];
      multipath?: boolean;
      enforce_multipath?: boolean;
      nvme_native_multipath?: boolean;
      /**
       * @description Sent by the Portalis agent: DeviceMapper multipath is usable on the host. Only a
       * connector with `dm_multipath: true` (and `multipath` true, native off) gets `dm_replicas`; os-brick
       * cannot read them.
       */
      dm_multipath?: boolean;
      platform?: string;
      os_type?: string;
    } & {
      [key: string]: (string | null) | boolean | number | (string | number | boolean)[];
    };
    CreateVolumeRequest: {
      id: components['schemas']['Uuid'];
      size_gb: number;
      replicas?: number;
      multiattach?: boolean;
      /** @description Default false. */
      compression?: boolean;
      /** @description Default true; false is refused (LightOS volumes are always thin). */
      thin_provisioned?: boolean;
      /**
       * @description The backend's QoS policy UUID (LightOS `qosPolicyUUID`, Cinder's `lightos:qos_policy`).
       */
      qos_policy_id?: components['schemas']['Uuid'];
      source?: components['schemas']['VolumeSource'];
    };
    Volume: {
      id: string;
      name: string;
      size_gb: number;
      replicas: number;
      multiattach: boolean;
      /** @enum {string} */
      status: 'creating' | 'available' | 'deleting' | 'error';
      backend_uuid: string | null;
      created_at: string;
      updated_at: string;
      compression?: boolean;
      thin_provisioned?: boolean;
      qos_policy_id?: string | null;
      source?: components['schemas']['VolumeSource'] | (never | null);
    };
    InitializeConnectionRequest: {
      connector: components['schemas']['Connector'];
      /**
       * @description Tells apart several attachments of one multiattach volume on one host. On a volume
       * without multiattach the same instance may attach on a second host (a live migration); any other is a
       * 409.
       */
      instance_uuid?: components['schemas']['Uuid'];
      /** @enum {string} */
      access_mode?: 'rw' | 'ro';
    };
    TerminateConnectionRequest: {
      /** @description The host's connector, or null with force to revoke every host. */
      connector: components['schemas']['Connector'] | (never | null);
      force?: boolean;
      attachment_id?: components['schemas']['Uuid'];
      instance_uuid?: components['schemas']['Uuid'];
    };
    /** @description [address, port, transport], transport one of tcp, rdma */
    PortalTuple: (string | number)[];
    ConnectionInfo: {
      /** @enum {string} */
      driver_volume_type: 'nvmeof';
      data: {
        vol_uuid: string;
        target_nqn?: string;
        /**
         * @description native and single: every replica's portal, the ANA-optimized first (a single-path
         * host connects the first that answers).
         */
        portals?: components['schemas']['PortalTuple'][];
        /**
         * @description dm only, in place of target_nqn/portals: answered only to a connector with
         * `dm_multipath: true` (the Portalis agent); os-brick cannot read it.
         */
        dm_replicas?: {
          vol_uuid: string;
          target_nqn: string;
          portals: components['schemas']['PortalTuple'][];
        }[];
        ns_id?: string;
        volume_nguid?: string;
        host_nqn: string;
        /** @enum {string} */
        multipath_mode: 'native' | 'dm' | 'single';
        /** @enum {string} */
        access_mode: 'rw' | 'ro';
        discard: boolean;
      };
    };
    InitializeConnectionResponse: {
      connection_info: components['schemas']['ConnectionInfo'];
      attachment_id: string;
    };
    TerminateConnectionResponse: {
      /**
       * @description Attachments left detaching: the host's Portalis agent releases the device first (it
       * refuses while the device is in use), and the host's access is revoked when it reports the device
       * disconnected. Empty for hosts without an agent, for host-connected attachments (the host disconnected
       * before the orchestrator terminates) and with force. An attachment without connection info (its
       * initialize failed before answering) is never pending: no agent can act on it, so it is detached at
       * once.
       */
      pending: string[];
      /** @description This call removed host access from the backend ACL. */
      revoked: boolean;
      /** @description Other live attachments of the volume remain on the host; its access was kept. */
      shared: boolean;
      /** @description Attachments this call detached. */
      detached: string[];
      revoked_hosts: string[];
    };
    /** @enum {string} */
    AttachmentStatus: 'attaching' | 'attached' | 'detaching' | 'detached' | 'error';
    Attachment: {
      id: string;
      volume_id: string;
      host_nqn: string;
      host: string;
      instance_uuid: string | null;
      status: components['schemas']['AttachmentStatus'];
      /** @enum {string} */
      multipath_mode: 'native' | 'dm' | 'single';
      connection_info: components['schemas']['ConnectionInfo'] | (never | null);
      connector: Record<string, unknown>;
      created_at: string;
      updated_at: string;
      detached_at: string | null;
      /**
       * @description When the portals in connection_info last changed: at attach, then whenever the portal
       * refresh follows the backend (a replica moved, a node joined or changed its address).
       */
      portals_changed_at?: string | null;
      force?: boolean;
      connected_by: components['schemas']['ConnectedBy'];
      host_portals: components['schemas']['HostPortals'];
      /**
       * @description The agent's last reported health; `unknown` before the first report or when it is older
       * than 180 s; `detached` when the host let go of the device of this live attachment.
       * @enum {string}
       */
      health?: 'optimal' | 'degraded' | 'failed' | 'unknown' | 'detached';
      agent?: {
        state?: string;
        device_path?: string | null;
        size_bytes?: number | null;
        health?: string | null;
        paths?: components['schemas']['PathStatus'][];
        error?: Record<string, unknown> | null;
        reported_at?: string;
      } | null;
    };
    /** @description Create from an orchestrator snapshot, or as a clone of an orchestrator volume. */
    VolumeSource:
      | {
          snapshot_id: components['schemas']['Uuid'];
        }
      | {
          volume_id: components['schemas']['Uuid'];
        };
    ExtendVolumeRequest: {
      new_size_gb: number;
    };
    CreateSnapshotRequest: {
      id: components['schemas']['Uuid'];
      name?: string;
    };
    Snapshot: {
      id: string;
      volume_id: string;
      name: string | null;
      /** @enum {string} */
      status: 'creating' | 'available' | 'deleting' | 'error';
      size_gb: number;
      backend_name: string;
      backend_uuid: string | null;
      created_at: string;
      updated_at: string;
    };
    /** @description GiB, or 'unknown' when the backend does not report it. */
    CapacityFigure: number | 'unknown';
    /** @description The keys of Cinder's get_volume_stats. */
    Capabilities: {
      volume_backend_name: string;
      /** @enum {string} */
      vendor_name: 'Portalis';
      driver_version: string;
      /** @enum {string} */
      storage_protocol: 'NVMe-oF';
      total_capacity_gb: components['schemas']['CapacityFigure'];
      free_capacity_gb: components['schemas']['CapacityFigure'];
      reserved_percentage: number;
      multiattach: boolean;
      online_extend_support: boolean;
      thin_provisioning_support: boolean;
      thick_provisioning_support: boolean;
      QoS_support: boolean;
      compression: boolean[];
      /**
       * @description True, every volume is a namespace of the cluster's one subsystem (host-side
       * connect/disconnect need os-brick's lock).
       */
      shared_targets: boolean;
    };
  };
  responses: {
    /** @description the volume */
    Volume: {
      content: {
        'application/json': components['schemas']['Volume'];
      };
    };
    /** @description an error */
    Error: {
      content: {
        'application/json': components['schemas']['Error'];
      };
    };
    /** @description where the host's secrets stand */
    HostSecretStatus: {
      content: {
        'application/json': components['schemas']['HostSecretStatus'];
      };
    };
  };
  parameters: {
    /**
     * @description The Portalis agent's version (0.2.0 and later send it with every request). Optional: an
     * older agent's requests are answered the same without it.
     */
    AgentVersion: string;
    /** @description The host's NQN. */
    HostNqn: components['schemas']['Nqn'];
    /** @description The orchestrator's volume UUID. */
    VolumeId: components['schemas']['Uuid'];
  };
  requestBodies: never;
  headers: never;
  pathItems: never;
}
export type $defs = Record<string, never>;
export interface operations {
  getDashboard: {
    responses: {
      /** @description the page */
      200: {
        content: {
          'text/html': string;
        };
      };
    };
  };
  getDashboardAsset: {
    parameters: {
      path: {
        file: 'app.js' | 'style.css';
      };
    };
    responses: {
      /** @description the file */
      200: {
        content: {
          'text/javascript': string;
          'text/css': string;
        };
      };
      400: components['responses']['Error'];
    };
  };
  getMetrics: {
    responses: {
      /** @description the metrics */
      200: {
        content: {
          'text/plain': string;
        };
      };
      401: components['responses']['Error'];
      403: components['responses']['Error'];
    };
  };
  getHealthz: {
    responses: {
      /** @description alive */
      200: {
        content: {
          'application/json': components['schemas']['Health'];
        };
      };
    };
  };
  getReadyz: {
    responses: {
      /** @description ready */
      200: {
        content: {
          'application/json': components['schemas']['Health'];
        };
      };
      /** @description not ready */
      503: {
        content: {
          'application/json': components['schemas']['Health'];
        };
      };
    };
  };
  getOpenApi: {
    responses: {
      /** @description the OpenAPI document */
      200: {
        content: {
          'application/json': Record<string, unknown>;
        };
      };
    };
  };
  createVolume: {
    requestBody: {
      content: {
        'application/json': components['schemas']['CreateVolumeRequest'];
      };
    };
    responses: {
      200: components['responses']['Volume'];
      201: components['responses']['Volume'];
      400: components['responses']['Error'];
      401: components['responses']['Error'];
      404: components['responses']['Error'];
      409: components['responses']['Error'];
      502: components['responses']['Error'];
      503: components['responses']['Error'];
      504: components['responses']['Error'];
    };
  };
  getVolume: {
    parameters: {
      path: {
        /** @description The orchestrator's volume UUID. */
        id: components['parameters']['VolumeId'];
      };
    };
    responses: {
      200: components['responses']['Volume'];
      400: components['responses']['Error'];
      401: components['responses']['Error'];
      404: components['responses']['Error'];
    };
  };
  deleteVolume: {
    parameters: {
      query?: {
        force?: boolean;
      };
      path: {
        /** @description The orchestrator's volume UUID. */
        id: components['parameters']['VolumeId'];
      };
    };
    responses: {
      /** @description deleted, or did not exist */
      204: {
        content?: never;
      };
      400: components['responses']['Error'];
      401: components['responses']['Error'];
      409: components['responses']['Error'];
      502: components['responses']['Error'];
      503: components['responses']['Error'];
      504: components['responses']['Error'];
    };
  };
  initializeConnection: {
    parameters: {
      path: {
        /** @description The orchestrator's volume UUID. */
        id: components['parameters']['VolumeId'];
      };
    };
    requestBody: {
      content: {
        'application/json': components['schemas']['InitializeConnectionRequest'];
      };
    };
    responses: {
      /** @description connection info and the attachment it belongs to */
      200: {
        content: {
          'application/json': components['schemas']['InitializeConnectionResponse'];
        };
      };
      400: components['responses']['Error'];
      401: components['responses']['Error'];
      404: components['responses']['Error'];
      409: components['responses']['Error'];
      502: components['responses']['Error'];
      503: components['responses']['Error'];
      504: components['responses']['Error'];
    };
  };
  terminateConnection: {
    parameters: {
      path: {
        /** @description The orchestrator's volume UUID. */
        id: components['parameters']['VolumeId'];
      };
    };
    requestBody: {
      content: {
        'application/json': components['schemas']['TerminateConnectionRequest'];
      };
    };
    responses: {
      /** @description what happened */
      200: {
        content: {
          'application/json': components['schemas']['TerminateConnectionResponse'];
        };
      };
      400: components['responses']['Error'];
      401: components['responses']['Error'];
      404: components['responses']['Error'];
      409: components['responses']['Error'];
      502: components['responses']['Error'];
      503: components['responses']['Error'];
      504: components['responses']['Error'];
    };
  };
  extendVolume: {
    parameters: {
      path: {
        /** @description The orchestrator's volume UUID. */
        id: components['parameters']['VolumeId'];
      };
    };
    requestBody: {
      content: {
        'application/json': components['schemas']['ExtendVolumeRequest'];
      };
    };
    responses: {
      200: components['responses']['Volume'];
      400: components['responses']['Error'];
      401: components['responses']['Error'];
      404: components['responses']['Error'];
      409: components['responses']['Error'];
      502: components['responses']['Error'];
      503: components['responses']['Error'];
      504: components['responses']['Error'];
    };
  };
  listVolumeSnapshots: {
    parameters: {
      path: {
        /** @description The orchestrator's volume UUID. */
        id: components['parameters']['VolumeId'];
      };
    };
    responses: {
      /** @description snapshots */
      200: {
        content: {
          'application/json': {
            snapshots: components['schemas']['Snapshot'][];
          };
        };
      };
      400: components['responses']['Error'];
      401: components['responses']['Error'];
      404: components['responses']['Error'];
    };
  };
  createSnapshot: {
    parameters: {
      path: {
        /** @description The orchestrator's volume UUID. */
        id: components['parameters']['VolumeId'];
      };
    };
    requestBody: {
      content: {
        'application/json': components['schemas']['CreateSnapshotRequest'];
      };
    };
    responses: {
      /** @description the snapshot */
      200: {
        content: {
          'application/json': components['schemas']['Snapshot'];
        };
      };
      /** @description the snapshot */
      201: {
        content: {
          'application/json': components['schemas']['Snapshot'];
        };
      };
      400: components['responses']['Error'];
      401: components['responses']['Error'];
      404: components['responses']['Error'];
      409: components['responses']['Error'];
      502: components['responses']['Error'];
      503: components['responses']['Error'];
      504: components['responses']['Error'];
    };
  };
  getSnapshot: {
    parameters: {
      path: {
        /** @description The orchestrator's snapshot UUID. */
        id: components['schemas']['Uuid'];
      };
    };
    responses: {
      /** @description the snapshot */
      200: {
        content: {
          'application/json': components['schemas']['Snapshot'];
        };
      };
      400: components['responses']['Error'];
      401: components['responses']['Error'];
      404: components['responses']['Error'];
    };
  };
  deleteSnapshot: {
    parameters: {
      path: {
        /** @description The orchestrator's snapshot UUID. */
        id: components['schemas']['Uuid'];
      };
    };
    responses: {
      /** @description deleted, or did not exist */
      204: {
        content?: never;
      };
      400: components['responses']['Error'];
      401: components['responses']['Error'];
      409: components['responses']['Error'];
      502: components['responses']['Error'];
      503: components['responses']['Error'];
      504: components['responses']['Error'];
    };
  };
  getCapabilities: {
    responses: {
      /** @description the backend's capabilities */
      200: {
        content: {
          'application/json': components['schemas']['Capabilities'];
        };
      };
      401: components['responses']['Error'];
    };
  };
  listAttachments: {
    parameters: {
      query?: {
        volume_id?: components['schemas']['Uuid'];
        host_nqn?: components['schemas']['Nqn'];
        status?: components['schemas']['AttachmentStatus'];
      };
    };
    responses: {
      /** @description attachments, oldest first */
      200: {
        content: {
          'application/json': {
            attachments: components['schemas']['Attachment'][];
          };
        };
      };
      400: components['responses']['Error'];
      401: components['responses']['Error'];
    };
  };
  getAttachment: {
    parameters: {
      path: {
        id: components['schemas']['Uuid'];
      };
    };
    responses: {
      /** @description the attachment */
      200: {
        content: {
          'application/json': components['schemas']['Attachment'];
        };
      };
      400: components['responses']['Error'];
      401: components['responses']['Error'];
      404: components['responses']['Error'];
    };
  };
  listAttachmentEvents: {
    parameters: {
      query?: {
        limit?: number;
      };
      path: {
        id: components['schemas']['Uuid'];
      };
    };
    responses: {
      /** @description the events */
      200: {
        content: {
          'application/json': {
            events: components['schemas']['AttachmentEvent'][];
          };
        };
      };
      400: components['responses']['Error'];
      401: components['responses']['Error'];
      404: components['responses']['Error'];
    };
  };
  listHosts: {
    responses: {
      /** @description hosts */
      200: {
        content: {
          'application/json': {
            hosts: components['schemas']['Host'][];
          };
        };
      };
      401: components['responses']['Error'];
      403: components['responses']['Error'];
    };
  };
  issueHostToken: {
    requestBody: {
      content: {
        'application/json': {
          nqn: components['schemas']['Nqn'];
          name?: string;
        };
      };
    };
    responses: {
      /** @description the host and its new token (shown only here) */
      201: {
        content: {
          'application/json': {
            host: components['schemas']['Host'];
            token: string;
          };
        };
      };
      400: components['responses']['Error'];
      401: components['responses']['Error'];
      403: components['responses']['Error'];
    };
  };
  getHost: {
    parameters: {
      path: {
        /** @description The host's NQN. */
        nqn: components['parameters']['HostNqn'];
      };
    };
    responses: {
      /** @description the host */
      200: {
        content: {
          'application/json': components['schemas']['Host'];
        };
      };
      400: components['responses']['Error'];
      401: components['responses']['Error'];
      403: components['responses']['Error'];
      404: components['responses']['Error'];
    };
  };
  revokeHostToken: {
    parameters: {
      path: {
        /** @description The host's NQN. */
        nqn: components['parameters']['HostNqn'];
      };
    };
    responses: {
      /** @description revoked */
      200: {
        content: {
          'application/json': Record<string, unknown>;
        };
      };
      401: components['responses']['Error'];
      403: components['responses']['Error'];
      404: components['responses']['Error'];
    };
  };
  getHostSecrets: {
    parameters: {
      path: {
        /** @description The host's NQN. */
        nqn: components['parameters']['HostNqn'];
      };
    };
    responses: {
      /** @description the state */
      200: {
        content: {
          'application/json': components['schemas']['HostSecretStatus'];
        };
      };
      400: components['responses']['Error'];
      401: components['responses']['Error'];
      403: components['responses']['Error'];
      404: components['responses']['Error'];
      409: components['responses']['Error'];
    };
  };
  ensureHostSecrets: {
    parameters: {
      path: {
        /** @description The host's NQN. */
        nqn: components['parameters']['HostNqn'];
      };
    };
    responses: {
      200: components['responses']['HostSecretStatus'];
      202: components['responses']['HostSecretStatus'];
      400: components['responses']['Error'];
      401: components['responses']['Error'];
      403: components['responses']['Error'];
      404: components['responses']['Error'];
      409: components['responses']['Error'];
      502: components['responses']['Error'];
      503: components['responses']['Error'];
      504: components['responses']['Error'];
    };
  };
  rotateHostSecrets: {
    parameters: {
      query?: {
        /** @description The generation in force when the caller decided to rotate. */
        from_generation?: number;
      };
      path: {
        /** @description The host's NQN. */
        nqn: components['parameters']['HostNqn'];
      };
    };
    responses: {
      200: components['responses']['HostSecretStatus'];
      202: components['responses']['HostSecretStatus'];
      400: components['responses']['Error'];
      401: components['responses']['Error'];
      403: components['responses']['Error'];
      404: components['responses']['Error'];
      409: components['responses']['Error'];
      502: components['responses']['Error'];
      503: components['responses']['Error'];
      504: components['responses']['Error'];
    };
  };
  getMultipathHealth: {
    parameters: {
      query?: {
        volume_id?: components['schemas']['Uuid'];
        host_nqn?: components['schemas']['Nqn'];
        /** @description Comma-separated cell states to keep, e.g. `degraded,failed`. */
        health?: string;
        /**
         * @description Volumes to skip; at most 2^31 - 1 (larger is a 400, not a query PostgreSQL refuses).
         */
        offset?: number;
        /** @description Volumes per page. */
        limit?: number;
        /** @description `volume`: by volume id; `worst`: the worst volumes first. */
        order?: 'volume' | 'worst';
      };
    };
    responses: {
      /** @description the matrix */
      200: {
        content: {
          'application/json': components['schemas']['HealthMatrix'];
        };
      };
      400: components['responses']['Error'];
      401: components['responses']['Error'];
      403: components['responses']['Error'];
    };
  };
  agentRegister: {
    parameters: {
      header?: {
        /**
         * @description The Portalis agent's version (0.2.0 and later send it with every request). Optional:
         * an older agent's requests are answered the same without it.
         */
        'x-portalis-agent-version'?: components['parameters']['AgentVersion'];
      };
    };
    requestBody: {
      content: {
        'application/json': {
          connector: components['schemas']['Connector'];
        };
      };
    };
    responses: {
      /** @description registered */
      200: {
        content: {
          'application/json': {
            host: components['schemas']['Host'];
          };
        };
      };
      400: components['responses']['Error'];
      401: components['responses']['Error'];
      403: components['responses']['Error'];
    };
  };
  agentListAttachments: {
    parameters: {
      query?: {
        since?: number;
        wait?: number;
      };
      header?: {
        /**
         * @description The Portalis agent's version (0.2.0 and later send it with every request). Optional:
         * an older agent's requests are answered the same without it.
         */
        'x-portalis-agent-version'?: components['parameters']['AgentVersion'];
      };
    };
    responses: {
      /** @description the host's attachments with their desired state */
      200: {
        content: {
          'application/json': {
            version: number;
            attachments: {
              id: string;
              volume_id: string;
              /** @enum {string} */
              desired: 'connected' | 'disconnected';
              force: boolean;
              size_gb: number;
              connection_info: components['schemas']['ConnectionInfo'];
              connected_by: components['schemas']['ConnectedBy'];
              host_portals: components['schemas']['HostPortals'];
            }[];
            /**
             * @description The host's DH-HMAC-CHAP secrets (`DHHC-1` strings), only to its own token:
             * `current` to connect and re-authenticate with, `previous` (while a rotation moves the
             * host) still accepted by the target. Null when the host has none; absent from a service
             * older than in-band authentication.
             */
            dhchap?: {
              current: components['schemas']['DhchapPair'];
              previous: {
                generation: number;
                host_secret: string;
                ctrl_secret: string;
              } | null;
            } | null;
          };
        };
      };
      400: components['responses']['Error'];
      401: components['responses']['Error'];
      403: components['responses']['Error'];
    };
  };
  agentReport: {
    parameters: {
      header?: {
        /**
         * @description The Portalis agent's version (0.2.0 and later send it with every request). Optional:
         * an older agent's requests are answered the same without it.
         */
        'x-portalis-agent-version'?: components['parameters']['AgentVersion'];
      };
      path: {
        id: components['schemas']['Uuid'];
      };
    };
    requestBody: {
      content: {
        'application/json': components['schemas']['AgentReport'];
      };
    };
    responses: {
      /** @description stored */
      200: {
        content: {
          'application/json': Record<string, unknown>;
        };
      };
      400: components['responses']['Error'];
      401: components['responses']['Error'];
      403: components['responses']['Error'];
      404: components['responses']['Error'];
    };
  };
}
