/**
 * InterestClient: a small Node.js client for interest.v1.InterestService over @grpc/grpc-js.
 *
 * The same contract as the Python client (client/interest_client/client.py):
 * - every call carries a deadline (`timeoutMs`, per attempt; streams: per acknowledgement);
 * - only UNAVAILABLE is retried (the server guarantees nothing was acknowledged then), up to
 *   `maxAttempts` attempts with full-jitter exponential backoff;
 * - event ids are assigned before the first attempt, so a retried batch is deduplicated by the
 *   server (DUPLICATE) instead of applied twice;
 * - `streamEvents` batches, bounds the unacknowledged batches, yields acks in input order and, after
 *   a reconnect, resends every batch not yet acknowledged.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';

import * as grpc from '@grpc/grpc-js';

import type { HealthClient } from './generated/grpc/health/v1/Health';
import type { HealthCheckResponse__Output } from './generated/grpc/health/v1/HealthCheckResponse';
import type { DeleteItemsResponse__Output } from './generated/interest/v1/DeleteItemsResponse';
import type { DeleteUserResponse__Output } from './generated/interest/v1/DeleteUserResponse';
import { EncodeMode } from './generated/interest/v1/EncodeMode';
import type { EncodeInterestResponse__Output } from './generated/interest/v1/EncodeInterestResponse';
import type { Event } from './generated/interest/v1/Event';
import type { EventAck__Output } from './generated/interest/v1/EventAck';
import type { EventBatch } from './generated/interest/v1/EventBatch';
import type { EventBatchAck__Output } from './generated/interest/v1/EventBatchAck';
import { EventType } from './generated/interest/v1/EventType';
import type { GetUserStateResponse__Output } from './generated/interest/v1/GetUserStateResponse';
import type { InterestServiceClient } from './generated/interest/v1/InterestService';
import type { Item } from './generated/interest/v1/Item';
import type { RecommendOptions as RecommendOptionsMessage } from './generated/interest/v1/RecommendOptions';
import type { RecommendResponse__Output } from './generated/interest/v1/RecommendResponse';
import type { UpsertItemsRequest } from './generated/interest/v1/UpsertItemsRequest';
import type { UpsertItemsResponse__Output } from './generated/interest/v1/UpsertItemsResponse';
import { loadProtos } from './proto';

// -- public types ---------------------------------------------------------------------------------

export type EventAck = EventAck__Output;
export type EventBatchAck = EventBatchAck__Output;
export type EncodeInterestResponse = EncodeInterestResponse__Output;
export type RecommendResponse = RecommendResponse__Output;
export type UpsertItemsResponse = UpsertItemsResponse__Output;
export type DeleteItemsResponse = DeleteItemsResponse__Output;
export type GetUserStateResponse = GetUserStateResponse__Output;
export type DeleteUserResponse = DeleteUserResponse__Output;
export type ServingStatus = HealthCheckResponse__Output['status'];

type EventTypeShort = 'view' | 'click' | 'like' | 'dislike' | 'purchase' | 'rating' | 'skip';
/** 'like', 'LIKE', 'EVENT_TYPE_LIKE' or the enum number (numbers pass unchecked, for newer protos). */
export type EventTypeInput = EventTypeShort | Uppercase<EventTypeShort> | keyof typeof EventType | number;

export interface EventInput {
  userId: string;
  itemId: string;
  type: EventTypeInput;
  /** The rating for 'rating' events; any other strength otherwise. */
  value?: number;
  /** When it happened, Unix epoch ms; 0 or absent: when the server receives it. */
  timestampMs?: number;
  /** Idempotency key, unique per user; assigned (uuid4 hex) when absent. */
  eventId?: string;
}

/** `{genre: ['Mystery', 'Thriller']}` or `[{name: 'genre', values: ['Mystery']}]`. */
export type AttributesInput =
  | Record<string, string | readonly string[]>
  | readonly { name: string; values: readonly string[] }[];

export interface ItemInput {
  itemId: string;
  text?: string;
  attributes?: AttributesInput;
}

export interface CallOptions {
  /** Deadline of this call (each attempt), overriding the client's `timeoutMs`. */
  timeoutMs?: number;
  /** Cancels the call (CANCELLED, never retried) and any backoff wait. */
  signal?: AbortSignal;
}

export interface RecommendOptions extends CallOptions {
  /** Number of items; 0: the server default. Default 10. */
  k?: number;
  theta?: number;
  conceptWeight?: number;
  excludeConsumed?: boolean;
  excludeItemIds?: readonly string[];
  /** Keep items carrying one of the values for every named attribute. */
  include?: Record<string, string | readonly string[]>;
  /** Drop items carrying any of the values. */
  exclude?: Record<string, string | readonly string[]>;
}

export interface StreamEventsOptions {
  /** Events per EventBatch (1..1000 on the server's default limit). Default 100. */
  batchSize?: number;
  /** Unacknowledged batches allowed at once; input is read only when a slot is free. Default 8. */
  maxInFlightBatches?: number;
  /** Every ack must arrive within this long of the previous one. Default: the client's timeoutMs. */
  ackTimeoutMs?: number;
  /** Optional deadline for the whole stream, in ms from its (re)start. Default: none. */
  streamTimeoutMs?: number;
  signal?: AbortSignal;
}

export interface WatchRecommendationsOptions extends Omit<RecommendOptions, 'timeoutMs'> {
  /** Least time between two lists, ms; 0 or absent: the server default. */
  minIntervalMs?: number;
  /** Optional deadline of each watch call, ms from its (re)start. Default: none. */
  streamTimeoutMs?: number;
}

/** What WatchRecommendations streams (its response type in the proto). */
export type WatchedList = ReturnType<InterestServiceClient['WatchRecommendations']> extends
  grpc.ClientReadableStream<infer T> ? T : never;

export type PemSource = string | Buffer; // a file path, or PEM bytes

export interface InterestClientOptions {
  /** Deadline of every call (each attempt), in ms. Default 10 000. */
  timeoutMs?: number;
  /** Attempts per call when the server answers UNAVAILABLE. Default 5. */
  maxAttempts?: number;
  /** Full-jitter backoff: uniform in [0, min(backoffMaxMs, backoffInitialMs * 2^retry)]. */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Bearer token sent on every call as `authorization: Bearer <token>`. */
  token?: string;
  /**
   * Tenant (namespace) every call acts for, sent as `x-tenant-id`; without it a call acts for
   * the server's default tenant, or for the one tenant the token is scoped to.
   */
  tenant?: string;
  /** Extra metadata sent on every call. */
  metadata?: Record<string, string>;
  /** TLS: `tls: true` verifies with the system roots; `tlsCa` with that CA; cert+key: mutual TLS. */
  tls?: boolean;
  tlsCa?: PemSource;
  tlsCert?: PemSource;
  tlsKey?: PemSource;
  /** Channel credentials built by the caller (instead of the tls* options). */
  credentials?: grpc.ChannelCredentials;
  channelOptions?: grpc.ChannelOptions;
  /** Directory holding interest/v1/interest.proto (default: the repository's protos/). */
  protoDir?: string;
  /** For tests: the random source of the jitter and the backoff sleep. */
  random?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** A failed call: the gRPC status code (number and name), its details and the attempts made. */
export class InterestError extends Error {
  readonly code: grpc.status;
  readonly codeName: string;
  readonly details: string;
  readonly attempts: number;

  constructor(code: grpc.status, details: string, attempts = 1) {
    const codeName = grpc.status[code] ?? `CODE_${code}`;
    super(`${codeName}: ${details}`);
    this.name = 'InterestError';
    this.code = code;
    this.codeName = codeName;
    this.details = details;
    this.attempts = attempts;
  }

  static fromServiceError(err: grpc.ServiceError, attempts = 1): InterestError {
    return new InterestError(err.code, err.details ?? err.message, attempts);
  }
}

function isServiceError(err: unknown): err is grpc.ServiceError {
  return err instanceof Error && typeof (err as Partial<grpc.ServiceError>).code === 'number'
    && (err as Partial<grpc.ServiceError>).metadata instanceof grpc.Metadata;
}

// -- helpers --------------------------------------------------------------------------------------

function enumName(
  names: Record<string, string>, prefix: string, value: string | number, what: string,
): string | number {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0) {
      throw new TypeError(`${what} must be a name or a non-negative integer, not ${value}`);
    }
    return value; // unchecked, so a client on an older proto can send newer values
  }
  if (typeof value !== 'string') {
    throw new TypeError(`${what} must be a name or an integer, not ${JSON.stringify(value)}`);
  }
  let name = value.trim().toUpperCase().replace(/-/g, '_');
  if (!name.startsWith(prefix)) {
    name = prefix + name;
  }
  if (!(name in names)) {
    const choices = Object.keys(names)
      .filter((n) => !n.endsWith('UNSPECIFIED'))
      .map((n) => n.slice(prefix.length).toLowerCase());
    throw new RangeError(`unknown ${what} ${JSON.stringify(value)}; expected one of ${choices.join(', ')}`);
  }
  return name;
}

function newEventId(): string {
  return randomUUID().replace(/-/g, '');
}

function toEvent(input: EventInput): Event {
  if (input === null || typeof input !== 'object') {
    throw new TypeError(`an event must be an object, not ${JSON.stringify(input)}`);
  }
  for (const key of ['userId', 'itemId'] as const) {
    if (typeof input[key] !== 'string') {
      throw new TypeError(`event.${key} must be a string: ${JSON.stringify(input)}`);
    }
  }
  const event: Event = {
    eventId: input.eventId || newEventId(),
    userId: input.userId,
    itemId: input.itemId,
    type: enumName(EventType, 'EVENT_TYPE_', input.type, 'event type') as Event['type'],
    timestampMs: input.timestampMs ?? 0,
  };
  if (input.value !== undefined && input.value !== null) {
    event.value = input.value;
  }
  return event;
}

function valuesOf(values: string | readonly string[]): string[] {
  // A bare string is one value, not a list of characters.
  return typeof values === 'string' ? [values] : values.map(String);
}

function toAttributes(attributes: AttributesInput | undefined): { name: string; values: string[] }[] {
  if (attributes === undefined) {
    return [];
  }
  if (Array.isArray(attributes)) {
    return attributes.map((a: { name: string; values: readonly string[] }) => ({
      name: a.name, values: valuesOf(a.values),
    }));
  }
  return Object.entries(attributes as Record<string, string | readonly string[]>)
    .map(([name, values]) => ({ name, values: valuesOf(values) }));
}

function toItem(input: ItemInput): Item {
  if (input === null || typeof input !== 'object' || typeof input.itemId !== 'string') {
    throw new TypeError(`an item needs a string itemId: ${JSON.stringify(input)}`);
  }
  return { itemId: input.itemId, text: input.text ?? '', attributes: toAttributes(input.attributes) };
}

function toFilters(filters: Record<string, string | readonly string[]> | undefined) {
  return Object.entries(filters ?? {}).map(([name, values]) => ({ name, values: valuesOf(values) }));
}

function chunks<T>(values: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < values.length; i += size) {
    out.push(values.slice(i, i + size));
  }
  return out;
}

function pem(source: PemSource | undefined): Buffer | null {
  if (source === undefined) {
    return null;
  }
  return Buffer.isBuffer(source) ? source : fs.readFileSync(source);
}

function abortError(): InterestError {
  return new InterestError(grpc.status.CANCELLED, 'cancelled by the caller');
}

function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError());
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError());
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function positive(name: string, value: number, min = 1): number {
  if (!Number.isFinite(value) || value < min) {
    throw new RangeError(`${name} must be >= ${min}, not ${value}`);
  }
  return value;
}

const END = Symbol('end of stream');

type Readable<T> = grpc.ClientReadableStream<T> | grpc.ClientDuplexStream<unknown, T>;

/** What a server-streaming call delivered: messages, then END or the call's error, in order. */
class Inbox<T> {
  private readonly queue: (T | typeof END | Error)[] = [];
  private wake: (() => void) | undefined;

  constructor(protected readonly call: Readable<T>) {
    call.on('data', (message: T) => this.push(message));
    // Stays attached after close(): a late error must never go unhandled.
    call.on('error', (err: Error) => this.push(err));
    call.on('end', () => this.push(END));
  }

  private push(item: T | typeof END | Error): void {
    this.queue.push(item);
    this.wake?.();
  }

  /**
   * The next message, or END at a clean end of the call; throws the call's error, or
   * DEADLINE_EXCEEDED when nothing came within `timeoutMs` (undefined: wait as long as it takes).
   */
  async receive(timeoutMs: number | undefined, what: string): Promise<T | typeof END> {
    if (this.queue.length === 0) {
      let timer: NodeJS.Timeout | undefined;
      const arrived = await new Promise<boolean>((resolve) => {
        this.wake = () => resolve(true);
        if (timeoutMs !== undefined) {
          timer = setTimeout(() => resolve(false), timeoutMs);
        }
      });
      clearTimeout(timer);
      this.wake = undefined;
      if (!arrived) {
        throw new InterestError(grpc.status.DEADLINE_EXCEEDED, `no ${what} within ${timeoutMs} ms`);
      }
    }
    const item = this.queue.shift()!;
    if (item instanceof Error) {
      throw item;
    }
    return item;
  }

  close(): void {
    this.call.cancel(); // a no-op once the call has ended
  }
}

/** One StreamEvents call: writes batches, receives acks. */
class AckStream extends Inbox<EventBatchAck> {
  private sendClosed = false;

  constructor(private readonly duplex: grpc.ClientDuplexStream<EventBatch, EventBatchAck>) {
    super(duplex as Readable<EventBatchAck>);
  }

  send(batch: EventBatch): void {
    if (!this.sendClosed) {
      this.duplex.write(batch);
    }
  }

  closeSend(): void {
    if (!this.sendClosed) {
      this.sendClosed = true;
      this.duplex.end();
    }
  }

  override close(): void {
    this.sendClosed = true;
    super.close();
  }
}

// -- the client -----------------------------------------------------------------------------------

export class InterestClient {
  readonly target: string;
  readonly timeoutMs: number;
  readonly maxAttempts: number;
  private readonly backoffInitialMs: number;
  private readonly backoffMaxMs: number;
  private readonly stub: InterestServiceClient;
  private readonly healthStub: HealthClient;
  private readonly baseMetadata: Record<string, string>;
  private readonly random: () => number;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly batchPrefix = randomBytes(6).toString('hex');
  private batchCounter = 0;

  constructor(target = 'localhost:50051', options: InterestClientOptions = {}) {
    this.target = target;
    this.timeoutMs = positive('timeoutMs', options.timeoutMs ?? 10_000);
    this.maxAttempts = positive('maxAttempts', options.maxAttempts ?? 5);
    this.backoffInitialMs = positive('backoffInitialMs', options.backoffInitialMs ?? 50, 0);
    this.backoffMaxMs = positive('backoffMaxMs', options.backoffMaxMs ?? 2_000, this.backoffInitialMs);
    this.random = options.random ?? Math.random;
    this.sleep = options.sleep ?? defaultSleep;
    this.baseMetadata = { ...(options.metadata ?? {}) };
    if (options.token !== undefined) {
      const token = options.token.trim();
      if (!token || /\s/.test(token)) {
        throw new RangeError('token must be a non-empty string without whitespace');
      }
      this.baseMetadata.authorization = `Bearer ${token}`;
    }
    if (options.tenant !== undefined) {
      if (!/^[a-z0-9][a-z0-9_-]{0,62}$/.test(options.tenant)) {
        throw new RangeError("tenant must be 1-63 of a-z, 0-9, '_' and '-', starting with a letter or digit");
      }
      this.baseMetadata['x-tenant-id'] = options.tenant;
    }
    const credentials = InterestClient.credentials(options);
    // gRPC's reconnect backoff starts at 1 s and fails fast meanwhile, which would use up the
    // retries while a restarted server is already back: pace it like the call backoff.
    const channelOptions: grpc.ChannelOptions = {
      'grpc.initial_reconnect_backoff_ms': Math.max(1, Math.round(this.backoffInitialMs)),
      'grpc.max_reconnect_backoff_ms': Math.max(1, Math.round(this.backoffMaxMs)),
      ...(options.channelOptions ?? {}),
    };
    const protos = loadProtos(options.protoDir);
    this.stub = new protos.interest.v1.InterestService(target, credentials, channelOptions);
    this.healthStub = new protos.grpc.health.v1.Health(target, credentials, {
      ...channelOptions,
      channelOverride: this.stub.getChannel(), // one connection for both services
    });
  }

  private static credentials(options: InterestClientOptions): grpc.ChannelCredentials {
    const { tls, tlsCa, tlsCert, tlsKey } = options;
    if ((tlsCert === undefined) !== (tlsKey === undefined)) {
      throw new RangeError('a client certificate needs both tlsCert and tlsKey');
    }
    const wantsTls = Boolean(tls) || tlsCa !== undefined || tlsCert !== undefined;
    if (!wantsTls) {
      return options.credentials ?? grpc.credentials.createInsecure();
    }
    if (options.credentials !== undefined) {
      throw new RangeError('give either credentials or tls/tlsCa/tlsCert/tlsKey, not both');
    }
    return grpc.credentials.createSsl(pem(tlsCa), pem(tlsKey), pem(tlsCert));
  }

  // -- plumbing -----------------------------------------------------------------------------------

  /** Full jitter: uniform in [0, min(backoffMaxMs, backoffInitialMs * 2^retry)]. */
  backoffMs(retry: number): number {
    const cap = Math.min(this.backoffMaxMs, this.backoffInitialMs * 2 ** Math.min(retry, 32));
    return this.random() * cap;
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    for (const [key, value] of Object.entries(this.baseMetadata)) {
      md.set(key, value);
    }
    return md;
  }

  private callOptions(call?: CallOptions): grpc.CallOptions {
    return { deadline: Date.now() + positive('timeoutMs', call?.timeoutMs ?? this.timeoutMs) };
  }

  private async withRetry<T>(attempt: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    for (let n = 1; ; n++) {
      if (signal?.aborted) {
        throw abortError();
      }
      try {
        return await attempt();
      } catch (err) {
        if (!isServiceError(err)) {
          throw err;
        }
        if (err.code !== grpc.status.UNAVAILABLE || n >= this.maxAttempts) {
          throw InterestError.fromServiceError(err, n);
        }
        await this.sleep(this.backoffMs(n - 1), signal);
      }
    }
  }

  private unary<T>(
    invoke: (md: grpc.Metadata, opts: grpc.CallOptions, cb: grpc.requestCallback<T>) => grpc.Call,
    call?: CallOptions,
  ): Promise<T> {
    return this.withRetry(() => new Promise<T>((resolve, reject) => {
      const pending = invoke(this.metadata(), this.callOptions(call), (err, response) => {
        call?.signal?.removeEventListener('abort', onAbort);
        if (err) {
          reject(err);
        } else {
          resolve(response as T);
        }
      });
      const onAbort = () => pending.cancel();
      call?.signal?.addEventListener('abort', onAbort, { once: true });
    }), call?.signal);
  }

  private eventBatch(events: readonly EventInput[]): EventBatch & { batchId: string; events: Event[] } {
    this.batchCounter += 1;
    return { batchId: `${this.batchPrefix}-${this.batchCounter}`, events: events.map(toEvent) };
  }

  // -- events -------------------------------------------------------------------------------------

  /** One batch with IngestEvents; event ids are assigned where missing, before the first attempt. */
  async ingestEvents(events: readonly EventInput[], call?: CallOptions): Promise<EventBatchAck> {
    const batch = this.eventBatch(events);
    return this.unary<EventBatchAck>((md, opts, cb) => this.stub.IngestEvents(batch, md, opts, cb), call);
  }

  /**
   * Streams events in batches over one StreamEvents call and yields one EventAck per event, in
   * input order. At most `maxInFlightBatches` batches are unacknowledged at once. If the stream
   * breaks with UNAVAILABLE it is reopened with backoff and every unacknowledged batch is resent
   * with the same event ids (the server answers DUPLICATE for those that had landed); after
   * `maxAttempts` consecutive failures without an ack the error is thrown. Breaking out of the
   * loop cancels the call.
   */
  async *streamEvents(
    events: Iterable<EventInput> | AsyncIterable<EventInput>,
    options: StreamEventsOptions = {},
  ): AsyncGenerator<EventAck, void, undefined> {
    const batchSize = positive('batchSize', options.batchSize ?? 100);
    const window = positive('maxInFlightBatches', options.maxInFlightBatches ?? 8);
    const ackTimeoutMs = positive('ackTimeoutMs', options.ackTimeoutMs ?? this.timeoutMs);
    const { signal } = options;
    const source: AsyncIterator<EventInput> | Iterator<EventInput> =
      Symbol.asyncIterator in events
        ? (events as AsyncIterable<EventInput>)[Symbol.asyncIterator]()
        : (events as Iterable<EventInput>)[Symbol.iterator]();
    const take = async (): Promise<EventInput[]> => {
      const chunk: EventInput[] = [];
      while (chunk.length < batchSize) {
        const next = await source.next();
        if (next.done) {
          break;
        }
        chunk.push(next.value);
      }
      return chunk;
    };

    // Sent and not yet yielded, in input order (Map keeps insertion order).
    const pending = new Map<string, EventBatch & { batchId: string; events: Event[] }>();
    const acked = new Map<string, EventBatchAck>();
    let exhausted = false;
    let failures = 0;
    for (;;) {
      if (signal?.aborted) {
        throw abortError();
      }
      const callOptions: grpc.CallOptions = options.streamTimeoutMs === undefined
        ? {} : { deadline: Date.now() + positive('streamTimeoutMs', options.streamTimeoutMs) };
      const stream = new AckStream(this.stub.StreamEvents(this.metadata(), callOptions));
      const onAbort = () => stream.close();
      signal?.addEventListener('abort', onAbort, { once: true });
      let progressed = false;
      try {
        for (const [batchId, batch] of pending) {
          if (!acked.has(batchId)) {
            stream.send(batch);
          }
        }
        if (exhausted) {
          stream.closeSend();
        }
        for (;;) {
          while (!exhausted && pending.size < window) {
            const chunk = await take();
            if (chunk.length === 0) {
              exhausted = true;
              stream.closeSend();
              break;
            }
            const batch = this.eventBatch(chunk);
            pending.set(batch.batchId, batch);
            stream.send(batch);
          }
          if (pending.size === 0) {
            break;
          }
          const ack = await stream.receive(ackTimeoutMs, 'event ack');
          if (ack === END) {
            throw new InterestError(grpc.status.INTERNAL,
              `server ended the stream with ${pending.size - acked.size} batch(es) unacknowledged`);
          }
          const batch = pending.get(ack.batchId);
          if (batch === undefined || acked.has(ack.batchId)) {
            throw new InterestError(grpc.status.INTERNAL,
              `ack for unknown or already acknowledged batch ${JSON.stringify(ack.batchId)}`);
          }
          if (ack.acks.length !== batch.events.length) {
            throw new InterestError(grpc.status.INTERNAL,
              `ack for batch ${ack.batchId} has ${ack.acks.length} acks for ${batch.events.length} events`);
          }
          acked.set(ack.batchId, ack);
          progressed = true;
          // Acks may arrive out of order; yield strictly in input order.
          for (const [batchId] of pending) {
            const done = acked.get(batchId);
            if (done === undefined) {
              break;
            }
            pending.delete(batchId);
            acked.delete(batchId);
            yield* done.acks;
          }
        }
        const tail = await stream.receive(ackTimeoutMs, 'end of stream'); // the server closes
        if (tail !== END) {
          throw new InterestError(grpc.status.INTERNAL, `unexpected ack for batch ${tail.batchId}`);
        }
        return;
      } catch (err) {
        if (signal?.aborted) {
          throw abortError();
        }
        if (!isServiceError(err)) {
          throw err;
        }
        if (err.code !== grpc.status.UNAVAILABLE) {
          throw InterestError.fromServiceError(err);
        }
        failures = progressed ? 1 : failures + 1;
        if (failures >= this.maxAttempts) {
          throw InterestError.fromServiceError(err, failures);
        }
        await this.sleep(this.backoffMs(failures - 1), signal);
      } finally {
        signal?.removeEventListener('abort', onAbort);
        stream.close();
      }
    }
  }

  // -- interests and recommendations --------------------------------------------------------------

  /** Parses a description into liked/disliked concepts and stores them; mode 'replace' or 'merge'. */
  async encodeInterest(
    userId: string, text: string, options: CallOptions & { mode?: 'replace' | 'merge' | keyof typeof EncodeMode } = {},
  ): Promise<EncodeInterestResponse> {
    const request = {
      userId,
      text,
      mode: enumName(EncodeMode, 'ENCODE_MODE_', options.mode ?? 'replace', 'encode mode') as keyof typeof EncodeMode,
    };
    return this.unary<EncodeInterestResponse>(
      (md, opts, cb) => this.stub.EncodeInterest(request, md, opts, cb), options);
  }

  private static recommendOptions(options: RecommendOptions): RecommendOptionsMessage {
    const message: RecommendOptionsMessage = {
      excludeItemIds: [...(options.excludeItemIds ?? [])],
      include: toFilters(options.include),
      exclude: toFilters(options.exclude),
    };
    if (options.theta !== undefined) {
      message.theta = options.theta;
    }
    if (options.conceptWeight !== undefined) {
      message.conceptWeight = options.conceptWeight;
    }
    if (options.excludeConsumed !== undefined) {
      message.excludeConsumed = options.excludeConsumed;
    }
    return message;
  }

  /** Ranks the catalog for a user; unset options take the server's defaults. */
  async recommend(userId: string, options: RecommendOptions = {}): Promise<RecommendResponse> {
    const request = { userId, k: options.k ?? 10, options: InterestClient.recommendOptions(options) };
    return this.unary<RecommendResponse>((md, opts, cb) => this.stub.Recommend(request, md, opts, cb), options);
  }

  /**
   * WatchRecommendations: yields the user's list at once, then a fresh one whenever the user's
   * state changes on any server process (coalesced by the server to one per `minIntervalMs`).
   * A watch is open-ended, so it has no deadline unless `streamTimeoutMs` is given. On
   * UNAVAILABLE (server restart, store outage) it reconnects with backoff and the server sends
   * the current list again; after `maxAttempts` consecutive failures without a list it throws.
   * Breaking out of the loop (or `signal`) cancels the call.
   */
  async *watchRecommendations(
    userId: string, options: WatchRecommendationsOptions = {},
  ): AsyncGenerator<WatchedList, void, undefined> {
    const request = {
      userId,
      k: options.k ?? 10,
      options: InterestClient.recommendOptions(options),
      minIntervalMs: options.minIntervalMs ?? 0,
    };
    const { signal } = options;
    let failures = 0;
    for (;;) {
      if (signal?.aborted) {
        throw abortError();
      }
      const callOptions: grpc.CallOptions = options.streamTimeoutMs === undefined
        ? {} : { deadline: Date.now() + positive('streamTimeoutMs', options.streamTimeoutMs) };
      const inbox = new Inbox<WatchedList>(
        this.stub.WatchRecommendations(request, this.metadata(), callOptions));
      const onAbort = () => inbox.close();
      signal?.addEventListener('abort', onAbort, { once: true });
      let received = false;
      try {
        for (;;) {
          const list = await inbox.receive(undefined, 'recommendation list');
          if (list === END) {
            return;
          }
          received = true;
          yield list;
        }
      } catch (err) {
        if (signal?.aborted) {
          throw abortError();
        }
        if (!isServiceError(err)) {
          throw err;
        }
        if (err.code !== grpc.status.UNAVAILABLE) {
          throw InterestError.fromServiceError(err);
        }
        failures = received ? 1 : failures + 1;
        if (failures >= this.maxAttempts) {
          throw InterestError.fromServiceError(err, failures);
        }
        await this.sleep(this.backoffMs(failures - 1), signal);
      } finally {
        signal?.removeEventListener('abort', onAbort);
        inbox.close();
      }
    }
  }

  // -- catalog ------------------------------------------------------------------------------------

  /** Adds or replaces items, one stream message per `batchSize` items; retried whole (idempotent). */
  async upsertItems(
    items: Iterable<ItemInput>, options: CallOptions & { batchSize?: number } = {},
  ): Promise<UpsertItemsResponse> {
    const batchSize = positive('batchSize', options.batchSize ?? 256);
    // Built up front so that a retry resends exactly the same messages.
    const requests: UpsertItemsRequest[] = chunks([...items].map(toItem), batchSize).map((b) => ({ items: b }));
    return this.unary<UpsertItemsResponse>((md, opts, cb) => {
      const call = this.stub.UpsertItems(md, opts, cb);
      for (const request of requests) {
        call.write(request);
      }
      call.end();
      return call;
    }, options);
  }

  async deleteItems(itemIds: readonly string[], call?: CallOptions): Promise<DeleteItemsResponse> {
    const request = { itemIds: [...itemIds] };
    return this.unary<DeleteItemsResponse>((md, opts, cb) => this.stub.DeleteItems(request, md, opts, cb), call);
  }

  // -- users --------------------------------------------------------------------------------------

  async getUserState(userId: string, options: CallOptions & { includeVector?: boolean } = {}): Promise<GetUserStateResponse> {
    const request = { userId, includeVector: options.includeVector ?? false };
    return this.unary<GetUserStateResponse>(
      (md, opts, cb) => this.stub.GetUserState(request, md, opts, cb), options);
  }

  /** Erases every key of the user. */
  async deleteUser(userId: string, call?: CallOptions): Promise<DeleteUserResponse> {
    return this.unary<DeleteUserResponse>(
      (md, opts, cb) => this.stub.DeleteUser({ userId }, md, opts, cb), call);
  }

  // -- health and lifecycle -----------------------------------------------------------------------

  /** grpc.health.v1 status: 'SERVING', 'NOT_SERVING', ... ('' = the whole server). */
  async health(service = '', call?: CallOptions): Promise<ServingStatus> {
    const response = await this.unary<HealthCheckResponse__Output>(
      (md, opts, cb) => this.healthStub.Check({ service }, md, opts, cb), call);
    return response.status;
  }

  /** Polls health (waiting for a connection) until SERVING; DEADLINE_EXCEEDED after `timeoutMs`. */
  async waitReady(timeoutMs = 60_000, service = ''): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer';
    for (let retry = 0; Date.now() < deadline; retry++) {
      try {
        const callDeadline = Math.min(deadline, Date.now() + this.timeoutMs);
        // Wait for a connection instead of failing fast while the server is not up yet.
        await new Promise<void>((resolve) => {
          this.stub.waitForReady(callDeadline, () => resolve());
        });
        const response = await new Promise<HealthCheckResponse__Output>((resolve, reject) => {
          this.healthStub.Check({ service }, this.metadata(), { deadline: callDeadline },
            (err, res) => (err ? reject(err) : resolve(res!)));
        });
        last = response.status;
        if (last === 'SERVING') {
          return;
        }
      } catch (err) {
        // NOT_FOUND: the server has not registered the status yet.
        const retriable = [grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.NOT_FOUND];
        if (!isServiceError(err) || !retriable.includes(err.code)) {
          throw isServiceError(err) ? InterestError.fromServiceError(err) : err;
        }
        last = `${grpc.status[err.code]}: ${err.details}`;
      }
      await this.sleep(Math.min(this.backoffMs(retry), Math.max(0, deadline - Date.now())));
    }
    throw new InterestError(grpc.status.DEADLINE_EXCEEDED,
      `${this.target} not SERVING after ${timeoutMs} ms (last: ${last})`);
  }

  /** Closes the channel; calls in progress are cancelled. */
  close(): void {
    this.stub.close();
  }
}
