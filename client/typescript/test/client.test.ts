/**
 * Unit tests of the client against an in-process fake InterestService (grpc-js server on a free
 * loopback port): deadlines, which codes are retried, backoff, batching and stream resume.
 * Run: `npm test` (builds first), or `node --test dist/test/` after `npm run build`.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';

import * as grpc from '@grpc/grpc-js';

import { InterestClient, InterestError, loadProtos } from '../src';
import type { EventBatch__Output } from '../src/generated/interest/v1/EventBatch';

type Handlers = Record<string, grpc.UntypedHandleCall>;

const protos = loadProtos();
let server: grpc.Server;
let target = '';
// Each test installs the handlers it needs; a method without one answers UNIMPLEMENTED.
let handlers: Handlers = {};
const deadlines: Record<string, number> = {};

function unimplemented(name: string): grpc.UntypedHandleCall {
  return (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
    callback({ code: grpc.status.UNIMPLEMENTED, details: `${name} not set up` }, null);
  };
}

function routed(names: string[]): Handlers {
  const out: Handlers = {};
  for (const name of names) {
    out[name] = ((call: { getDeadline(): grpc.Deadline }, ...rest: unknown[]) => {
      const deadline = call.getDeadline();
      deadlines[name] = deadline instanceof Date ? deadline.getTime() : deadline;
      const handler = handlers[name] ?? unimplemented(name);
      return (handler as (...args: unknown[]) => unknown)(call, ...rest);
    }) as grpc.UntypedHandleCall;
  }
  return out;
}

function unavailable(details = 'redis down'): grpc.ServiceError {
  return Object.assign(new Error(details), {
    code: grpc.status.UNAVAILABLE, details, metadata: new grpc.Metadata(),
  });
}

function ackFor(batch: EventBatch__Output, status = 'ACK_STATUS_APPLIED') {
  return {
    batchId: batch.batchId,
    acks: batch.events.map((e) => ({ eventId: e.eventId, status, userVersion: 1 })),
    applied: batch.events.length,
  };
}

/** A client whose backoff sleeps are recorded instead of slept, with jitter fixed at 0.5. */
function client(options: ConstructorParameters<typeof InterestClient>[1] = {}) {
  const sleeps: number[] = [];
  const c = new InterestClient(target, {
    timeoutMs: 2_000,
    random: () => 0.5,
    sleep: async (ms: number) => {
      sleeps.push(ms);
    },
    ...options,
  });
  return { c, sleeps };
}

before(async () => {
  server = new grpc.Server();
  server.addService(protos.interest.v1.InterestService.service, routed([
    'StreamEvents', 'IngestEvents', 'EncodeInterest', 'Recommend', 'UpsertItems', 'DeleteItems',
    'GetUserState', 'DeleteUser', 'WatchRecommendations',
  ]));
  server.addService(protos.grpc.health.v1.Health.service, routed(['Check', 'Watch']));
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(),
      (err, p) => (err ? reject(err) : resolve(p)));
  });
  target = `127.0.0.1:${port}`;
});

after(() => {
  server.forceShutdown();
});

beforeEach(() => {
  handlers = {};
  for (const key of Object.keys(deadlines)) {
    delete deadlines[key];
  }
});

describe('unary calls', () => {
  test('UNAVAILABLE is retried with full-jitter backoff; event ids are kept', async () => {
    const seen: EventBatch__Output[] = [];
    handlers.IngestEvents = (call: grpc.ServerUnaryCall<EventBatch__Output, unknown>,
      cb: grpc.sendUnaryData<unknown>) => {
      seen.push(call.request);
      if (seen.length < 3) {
        cb(unavailable(), null);
      } else {
        cb(null, ackFor(call.request));
      }
    };
    const { c, sleeps } = client({ backoffInitialMs: 100, backoffMaxMs: 150 });
    try {
      const ack = await c.ingestEvents([
        { userId: 'u1', itemId: 'i1', type: 'like' },
        { userId: 'u1', itemId: 'i2', type: 'EVENT_TYPE_RATING', value: 4, eventId: 'mine' },
      ]);
      assert.equal(ack.applied, 2);
      assert.deepEqual(ack.acks.map((a) => a.status), ['ACK_STATUS_APPLIED', 'ACK_STATUS_APPLIED']);
      assert.equal(seen.length, 3);
      // Same batch id and event ids on every attempt, so the server can deduplicate.
      for (const batch of seen) {
        assert.equal(batch.batchId, seen[0].batchId);
        assert.deepEqual(batch.events.map((e) => e.eventId), seen[0].events.map((e) => e.eventId));
      }
      assert.match(seen[0].events[0].eventId, /^[0-9a-f]{32}$/);
      assert.equal(seen[0].events[1].eventId, 'mine');
      assert.equal(seen[0].events[1].type, 'EVENT_TYPE_RATING');
      assert.equal(seen[0].events[1].value, 4);
      // random() = 0.5 of min(max, initial * 2^retry): 0.5 * 100, then 0.5 * min(150, 200).
      assert.deepEqual(sleeps, [50, 75]);
    } finally {
      c.close();
    }
  });

  test('gives up after maxAttempts, reporting the attempts', async () => {
    let calls = 0;
    handlers.Recommend = (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
      calls += 1;
      cb(unavailable('still down'), null);
    };
    const { c, sleeps } = client({ maxAttempts: 3 });
    try {
      await assert.rejects(c.recommend('u1', { k: 5 }), (err: unknown) => {
        assert.ok(err instanceof InterestError);
        assert.equal(err.codeName, 'UNAVAILABLE');
        assert.equal(err.details, 'still down');
        assert.equal(err.attempts, 3);
        return true;
      });
      assert.equal(calls, 3);
      assert.equal(sleeps.length, 2);
    } finally {
      c.close();
    }
  });

  for (const code of [grpc.status.INVALID_ARGUMENT, grpc.status.RESOURCE_EXHAUSTED,
    grpc.status.INTERNAL, grpc.status.PERMISSION_DENIED]) {
    test(`${grpc.status[code]} is not retried`, async () => {
      let calls = 0;
      handlers.EncodeInterest = (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
        calls += 1;
        cb({ code, details: 'no' }, null);
      };
      const { c, sleeps } = client();
      try {
        await assert.rejects(c.encodeInterest('u1', 'I like jazz'), (err: unknown) =>
          err instanceof InterestError && err.code === code && err.attempts === 1);
        assert.equal(calls, 1);
        assert.deepEqual(sleeps, []);
      } finally {
        c.close();
      }
    });
  }

  test('every call carries a deadline of timeoutMs', async () => {
    const ok = (response: unknown) => (_call: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, response);
    handlers.IngestEvents = ok({ batchId: 'b' });
    handlers.EncodeInterest = ok({ userId: 'u1' });
    handlers.Recommend = ok({ userId: 'u1' });
    handlers.DeleteItems = ok({ deleted: 1 });
    handlers.GetUserState = ok({ userId: 'u1', version: 3 });
    handlers.DeleteUser = ok({ keysDeleted: 4 });
    handlers.Check = ok({ status: 'SERVING' });
    handlers.UpsertItems = (call: grpc.ServerReadableStream<{ items: unknown[] }, unknown>,
      cb: grpc.sendUnaryData<unknown>) => {
      let n = 0;
      call.on('data', (req: { items: unknown[] }) => { n += req.items.length; });
      call.on('end', () => cb(null, { upserted: n }));
    };
    const { c } = client({ timeoutMs: 5_000 });
    try {
      const t0 = Date.now();
      await c.ingestEvents([{ userId: 'u1', itemId: 'i1', type: 'view' }]);
      await c.encodeInterest('u1', 'I love jazz', { mode: 'merge' });
      await c.recommend('u1', { k: 3, theta: 0.4, include: { genre: 'Jazz' } });
      const up = await c.upsertItems(
        Array.from({ length: 5 }, (_, i) => ({ itemId: `i${i}`, text: 't', attributes: { g: ['x'] } })),
        { batchSize: 2 });
      assert.equal(up.upserted, 5);
      await c.deleteItems(['i1']);
      assert.equal((await c.getUserState('u1')).version, 3);
      assert.equal((await c.deleteUser('u1')).keysDeleted, 4);
      assert.equal(await c.health(), 'SERVING');
      await c.recommend('u1', { timeoutMs: 1_000 });
      const t1 = Date.now();
      for (const name of ['IngestEvents', 'EncodeInterest', 'UpsertItems', 'DeleteItems',
        'GetUserState', 'DeleteUser', 'Check']) {
        const deadline = deadlines[name];
        assert.ok(Number.isFinite(deadline), `${name} had no deadline`);
        assert.ok(deadline >= t0 + 4_000 && deadline <= t1 + 5_100, `${name}: ${deadline - t0} ms`);
      }
      // The per-call override (the last Recommend).
      assert.ok(deadlines.Recommend <= t1 + 1_100);
    } finally {
      c.close();
    }
  });

  test('a call past its deadline fails DEADLINE_EXCEEDED, not retried', async () => {
    let calls = 0;
    handlers.GetUserState = () => { calls += 1; }; // never answers
    const { c } = client({ timeoutMs: 200 });
    try {
      const t0 = Date.now();
      await assert.rejects(c.getUserState('u1'), (err: unknown) =>
        err instanceof InterestError && err.codeName === 'DEADLINE_EXCEEDED' && err.attempts === 1);
      assert.ok(Date.now() - t0 < 2_000);
      assert.equal(calls, 1);
    } finally {
      c.close();
    }
  });

  test('an AbortSignal cancels the call', async () => {
    handlers.GetUserState = () => undefined; // never answers
    const { c } = client({ timeoutMs: 5_000 });
    try {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 50);
      await assert.rejects(c.getUserState('u1', { signal: controller.signal }), (err: unknown) =>
        err instanceof InterestError && err.codeName === 'CANCELLED' && err.attempts === 1);
    } finally {
      c.close();
    }
  });

  test('the token goes out as authorization: Bearer', async () => {
    let auth: grpc.MetadataValue[] = [];
    handlers.DeleteUser = (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      auth = call.metadata.get('authorization');
      cb(null, { keysDeleted: 0 });
    };
    const { c } = client({ token: 's3cret' });
    try {
      await c.deleteUser('u1');
      assert.deepEqual(auth, ['Bearer s3cret']);
    } finally {
      c.close();
    }
    assert.throws(() => new InterestClient(target, { token: 'two words' }), RangeError);
  });

  test('the tenant goes out as x-tenant-id on every call', async () => {
    let tenant: grpc.MetadataValue[] = [];
    handlers.DeleteUser = (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      tenant = call.metadata.get('x-tenant-id');
      cb(null, { keysDeleted: 0 });
    };
    const { c } = client({ tenant: 'acme' });
    try {
      await c.deleteUser('u1');
      assert.deepEqual(tenant, ['acme']);
    } finally {
      c.close();
    }
    assert.throws(() => new InterestClient(target, { tenant: 'Not A Tenant' }), RangeError);
  });

  test('bad input is refused before anything is sent', async () => {
    let calls = 0;
    handlers.IngestEvents = (_call: unknown, cb: grpc.sendUnaryData<unknown>) => {
      calls += 1;
      cb(null, {});
    };
    const { c } = client();
    try {
      await assert.rejects(c.ingestEvents([{ userId: 'u1', itemId: 'i1', type: 'love' as never }]),
        /unknown event type "love"; expected one of view, click, like/);
      await assert.rejects(c.encodeInterest('u1', 'x', { mode: 'append' as never }), /unknown encode mode/);
      assert.equal(calls, 0);
    } finally {
      c.close();
    }
  });
});

describe('streamEvents', () => {
  test('batches, bounds in-flight batches and yields acks in input order', async () => {
    const sizes: number[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    handlers.StreamEvents = (call: grpc.ServerDuplexStream<EventBatch__Output, unknown>) => {
      let held: EventBatch__Output[] = [];
      const flush = () => {
        // Acknowledge held batches newest first: the client must still yield in input order.
        for (const batch of held.reverse()) {
          inFlight -= 1;
          call.write(ackFor(batch));
        }
        held = [];
      };
      call.on('data', (batch: EventBatch__Output) => {
        sizes.push(batch.events.length);
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        held.push(batch);
        if (held.length === 2) {
          flush();
        }
      });
      call.on('end', () => {
        flush();
        call.end();
      });
    };
    const { c } = client();
    try {
      const events = Array.from({ length: 250 }, (_, i) => ({
        userId: `u${i % 7}`, itemId: `i${i}`, type: 'click' as const, eventId: `e${i}`,
      }));
      async function* slowly() { // an async source works too
        yield* events;
      }
      const acks = [];
      for await (const ack of c.streamEvents(slowly(), { batchSize: 100, maxInFlightBatches: 2 })) {
        acks.push(ack.eventId);
      }
      assert.deepEqual(acks, events.map((e) => e.eventId));
      assert.deepEqual(sizes, [100, 100, 50]);
      assert.ok(maxInFlight <= 2, `max in flight ${maxInFlight}`);
    } finally {
      c.close();
    }
  });

  test('after UNAVAILABLE, every unacknowledged batch is resent with the same ids', async () => {
    const calls: EventBatch__Output[][] = [];
    handlers.StreamEvents = (call: grpc.ServerDuplexStream<EventBatch__Output, unknown>) => {
      const received: EventBatch__Output[] = [];
      calls.push(received);
      const first = calls.length === 1;
      call.on('data', (batch: EventBatch__Output) => {
        received.push(batch);
        if (first && received.length === 2) {
          call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'redis down' });
        } else if (!(first && received.length > 2)) {
          call.write(ackFor(batch, first ? 'ACK_STATUS_APPLIED' : 'ACK_STATUS_DUPLICATE'));
        }
      });
      call.on('end', () => call.end());
    };
    const { c, sleeps } = client();
    try {
      const events = Array.from({ length: 5 }, (_, i) => ({
        userId: 'u1', itemId: `i${i}`, type: 'view' as const,
      }));
      const acks = [];
      for await (const ack of c.streamEvents(events, { batchSize: 2, maxInFlightBatches: 2 })) {
        acks.push(ack);
      }
      assert.equal(acks.length, 5);
      assert.equal(calls.length, 2);
      assert.equal(sleeps.length, 1);
      const firstIds = calls[0].flatMap((b) => b.events.map((e) => e.eventId));
      // The first batch was acknowledged on the first call and is not resent; the second is
      // resent unchanged (same batch id, same event ids).
      assert.deepEqual(calls[1][0].batchId, calls[0][1].batchId);
      assert.ok(!calls[1].some((b) => b.batchId === calls[0][0].batchId));
      assert.deepEqual(calls[1][0].events.map((e) => e.eventId), firstIds.slice(2, 4));
      assert.deepEqual(acks.map((a) => a.eventId),
        [...calls[0][0].events, ...calls[1].flatMap((b) => b.events)].map((e) => e.eventId));
      assert.deepEqual(acks.map((a) => a.status), ['ACK_STATUS_APPLIED', 'ACK_STATUS_APPLIED',
        'ACK_STATUS_DUPLICATE', 'ACK_STATUS_DUPLICATE', 'ACK_STATUS_DUPLICATE']);
    } finally {
      c.close();
    }
  });

  test('a non-retriable status ends the stream with that error', async () => {
    handlers.StreamEvents = (call: grpc.ServerDuplexStream<EventBatch__Output, unknown>) => {
      call.on('data', () => call.emit('error', { code: grpc.status.PERMISSION_DENIED, details: 'scope' }));
    };
    const { c, sleeps } = client();
    try {
      const run = async () => {
        for await (const _ of c.streamEvents([{ userId: 'u1', itemId: 'i1', type: 'like' }])) {
          // nothing: the first batch already fails
        }
      };
      await assert.rejects(run(), (err: unknown) =>
        err instanceof InterestError && err.codeName === 'PERMISSION_DENIED');
      assert.deepEqual(sleeps, []);
    } finally {
      c.close();
    }
  });

  test('a silent server fails the stream after ackTimeoutMs', async () => {
    handlers.StreamEvents = () => undefined; // reads nothing, acks nothing
    const { c } = client();
    try {
      const run = async () => {
        for await (const _ of c.streamEvents([{ userId: 'u1', itemId: 'i1', type: 'like' }],
          { ackTimeoutMs: 150 })) {
          // never reached
        }
      };
      await assert.rejects(run(), (err: unknown) =>
        err instanceof InterestError && err.codeName === 'DEADLINE_EXCEEDED');
    } finally {
      c.close();
    }
  });
});

describe('watchRecommendations', () => {
  test('yields every list, reconnects after UNAVAILABLE, has no deadline by default', async () => {
    const requests: Record<string, unknown>[] = [];
    handlers.WatchRecommendations = (call: grpc.ServerWritableStream<Record<string, unknown>, unknown>) => {
      requests.push(call.request);
      const list = (version: number) => ({ userId: 'u1', userVersion: version, items: [{ itemId: `i${version}` }] });
      if (requests.length === 1) {
        call.write(list(1));
        setTimeout(() => call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'restart' }), 20);
      } else {
        call.write(list(2));
        setTimeout(() => {
          call.write(list(3));
          call.end();
        }, 20);
      }
    };
    const { c, sleeps } = client();
    try {
      const versions = [];
      for await (const list of c.watchRecommendations('u1', {
        k: 4, minIntervalMs: 250, exclude: { genre: 'Romance' },
      })) {
        versions.push(list.userVersion);
      }
      assert.deepEqual(versions, [1, 2, 3]);
      assert.equal(requests.length, 2);
      assert.equal(sleeps.length, 1);
      assert.equal(deadlines.WatchRecommendations, Infinity);
      assert.equal(requests[0].userId, 'u1');
      assert.equal(requests[0].k, 4);
      assert.equal(requests[0].minIntervalMs, 250);
      assert.deepEqual((requests[0].options as { exclude: unknown }).exclude,
        [{ name: 'genre', values: ['Romance'] }]);
    } finally {
      c.close();
    }
  });

  test('breaking out of the loop cancels the call', async () => {
    let cancelled = false;
    handlers.WatchRecommendations = (call: grpc.ServerWritableStream<unknown, unknown>) => {
      call.on('cancelled', () => { cancelled = true; });
      call.write({ userId: 'u1', userVersion: 1 });
    };
    const { c } = client();
    try {
      for await (const list of c.watchRecommendations('u1')) {
        assert.equal(list.userVersion, 1);
        break;
      }
      for (let i = 0; i < 50 && !cancelled; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.ok(cancelled, 'the server saw no cancellation');
    } finally {
      c.close();
    }
  });
});
