// Types of the tailor-wasm API (the same wire format as the native server; see the README).

export interface Geo {
  country?: string; region?: string; city?: string; postal?: string;
  latitude?: number; longitude?: number; time_zone?: string; continent?: string;
  accuracy_km?: number; anonymous?: boolean;
}

export interface Device {
  type?: "mobile" | "tablet" | "desktop" | "tv" | "console" | "wearable" | "bot";
  os?: string; os_version?: string; browser?: string; browser_version?: string;
  brand?: string; model?: string; is_bot?: boolean;
}

export interface DecideRequest {
  visitor_id?: string;
  placements: string[];
  context?: {
    url?: string; referrer?: string;
    headers?: Record<string, string>; cookies?: Record<string, string>;
    ip?: string; geo?: Geo; device?: Device;
    returning?: boolean; visit_count?: number;
    attributes?: Record<string, unknown>;
  };
  consent?: { personalization?: boolean };
  explain?: boolean;
}

export interface ProfileSnapshot {
  visitor_id?: string;
  traits?: Record<string, unknown>;
  segments?: string[];
  consent?: Record<string, boolean>;
  events?: Record<string, Array<{ at: string } & Record<string, unknown>>>;
  exposures?: Record<string, number>;
}

export type Reason = "matched" | "default" | "holdout" | "unknown_placement";

export interface ExperienceTrace {
  experience: string;
  outcome:
    | "selected" | "not_scheduled" | "audience_false" | "input_error" | "consent_required"
    | "visitor_id_required" | "traffic_excluded" | "exclusion_group" | "frequency_capped";
  detail?: string;
  buckets?: { traffic?: number; exclusion?: number; variant?: number };
}

export interface Decision {
  placement: string;
  experience?: string;
  variant?: string;
  content: unknown;
  reason: Reason;
  trace?: {
    holdouts?: Array<{ holdout: string; bucket?: number; held_out: boolean }>;
    experiences: ExperienceTrace[];
    summary: string;
  };
}

export interface BundleRef { id: string; version: string; hash: string }

export interface DecideResponse {
  bundle: BundleRef;
  decisions: Decision[];
  notes?: string[];
}

export interface Diagnostic {
  code: string; message: string; severity?: string;
  file?: string; line?: number; column?: number; help?: string;
}

export declare class TailorError extends Error {
  code: string;
  errors: Diagnostic[];
}

export declare class Profile {
  free(): void;
}

export declare class Engine {
  /** Compile a bundle artifact from `tailor build`. Throws TailorError (`invalid_bundle`). */
  static fromBundle(bundle: string | Uint8Array | ArrayBuffer | object): Engine;
  readonly bundle: BundleRef;
  placements(): string[];
  /** Decode a snapshot once for many decisions. Throws TailorError (`invalid_profile`). */
  loadProfile(snapshot: ProfileSnapshot | string): Profile;
  /** Throws TailorError (`invalid_request`). `now`: Date or Unix ms, default the current time. */
  decide(request: DecideRequest | string, profile?: Profile | ProfileSnapshot | string | null, now?: Date | number): DecideResponse;
  /** Allocation preview over `visitors` synthetic visitor ids (default 10,000). */
  simulate(request: Partial<DecideRequest> | string, profile?: ProfileSnapshot | string | null, visitors?: number, now?: Date | number): {
    visitors: number;
    rows: Array<{ placement: string; experience: string; variant: string; visitors: number; share: number }>;
  };
  free(): void;
}

export declare class GeoDb {
  static fromBytes(bytes: Uint8Array | ArrayBuffer): GeoDb;
  /** The `geo` fields for an IP, or null when the database has no record. Throws on a malformed IP. */
  lookup(ip: string): Geo | null;
  free(): void;
}

export declare function detectDevice(userAgent: string, headers?: Record<string, string>): Device;

/** Browser entry point only: instantiate the module once. */
export declare function load(source?: string | URL | Response | BufferSource): Promise<{
  Engine: typeof Engine; Profile: typeof Profile; TailorError: typeof TailorError; GeoDb: typeof GeoDb;
  detectDevice: typeof detectDevice;
}>;
