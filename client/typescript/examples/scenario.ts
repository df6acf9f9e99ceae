/**
 * End-to-end scenario over a live server, printed as one JSON object on stdout (what
 * tests/integration/test_typescript_client.py asserts on):
 *
 *   node dist/examples/scenario.js --target 127.0.0.1:50051 [--user ts-dave] [--timeout-ms 30000]
 *
 * It expects the test catalog of tests/integration/conftest.py (ids 1..30, genre attributes)
 * and adds one item ("31", a Western) through UpsertItems.
 */
import { InterestClient, InterestError, type EventInput } from '../src';

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) {
    return process.argv[i + 1];
  }
  if (fallback === undefined) {
    throw new Error(`missing --${name}`);
  }
  return fallback;
}

async function main(): Promise<void> {
  const target = arg('target');
  const user = arg('user', 'ts-dave');
  const streamUser = `${user}-stream`;
  const client = new InterestClient(target, { timeoutMs: Number(arg('timeout-ms', '30000')) });
  const started = Date.now();
  const timings: Record<string, number> = {};
  const step = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = Date.now();
    try {
      return await fn();
    } finally {
      timings[name] = Date.now() - t0;
    }
  };
  try {
    await step('waitReady', () => client.waitReady(30_000));
    const health = await step('health', () => client.health());

    const upsert = await step('upsertItems', () => client.upsertItems([
      { itemId: '31', text: 'High Noon (1952). Genres: Western', attributes: { genre: ['Western'] } },
    ]));

    // Unary ingest: the user likes two science-fiction films.
    const ingest = await step('ingestEvents', () => client.ingestEvents([
      { userId: user, itemId: '13', type: 'like', timestampMs: 1 },
      { userId: user, itemId: '16', type: 'LIKE', timestampMs: 2 },
    ]));

    // Streamed ingest in batches of 3, then the same events (same ids) again: DUPLICATE.
    const streamed: EventInput[] = ['19', '20', '21', '22', '23', '24', '25'].map((itemId, i) => ({
      userId: streamUser,
      itemId,
      type: i === 0 ? 'rating' : i % 2 ? 'view' : 'click',
      value: i === 0 ? 4 : undefined,
      timestampMs: 1_000 + i,
      eventId: `ev-${i}`,
    }));
    const collect = async (events: EventInput[]) => {
      const acks = [];
      for await (const ack of client.streamEvents(events, { batchSize: 3, maxInFlightBatches: 2 })) {
        acks.push({ eventId: ack.eventId, status: ack.status, userVersion: ack.userVersion });
      }
      return acks;
    };
    const streamAcks = await step('streamEvents', () => collect(streamed));
    const replayAcks = await step('streamEventsReplay', () => collect(streamed));

    const encode = await step('encodeInterest', () =>
      client.encodeInterest(user, 'I love mystery films, I hate romance'));
    const rec = await step('recommend', () => client.recommend(user, { k: 8 }));
    const state = await step('getUserState', () => client.getUserState(user));
    const deleted = await step('deleteUser', () => client.deleteUser(streamUser));
    const afterDelete = await step('getUserStateAfterDelete', () => client.getUserState(streamUser));
    const badRequest = await step('invalidRequest', () => client.recommend('', { k: 5 }).then(
      () => ({ code: 'OK', attempts: 1 }),
      (err: unknown) => (err instanceof InterestError
        ? { code: err.codeName, attempts: err.attempts, details: err.details }
        : { code: String(err), attempts: 0 })));

    const out = {
      target,
      health,
      upsert: { upserted: upsert.upserted, catalogSize: upsert.catalogSize, model: upsert.model },
      ingest: {
        batchId: ingest.batchId,
        applied: ingest.applied,
        acks: ingest.acks.map((a) => ({ eventId: a.eventId, status: a.status, userVersion: a.userVersion })),
      },
      stream: streamAcks,
      streamReplay: replayAcks,
      encode: {
        concepts: encode.concepts.map((c) => ({
          phrase: c.phrase,
          polarity: c.polarity,
          weight: c.weight,
          links: c.links.map((l) => `${l.name}=${l.value}`),
        })),
        model: encode.model,
      },
      recommend: {
        strategy: rec.strategy,
        userVersion: rec.userVersion,
        removedByDislikes: rec.removedByDislikes,
        removedConsumed: rec.removedConsumed,
        items: rec.items.map((it) => ({
          itemId: it.itemId,
          score: it.score,
          text: it.text,
          genres: it.attributes.find((a) => a.name === 'genre')?.values ?? [],
          reason: it.reasons[0]?.text ?? '',
        })),
      },
      state: { version: state.version, eventCount: state.eventCount, concepts: state.concepts.map((c) => c.phrase) },
      deleteUser: { keysDeleted: deleted.keysDeleted, versionAfter: afterDelete.version },
      invalidRequest: badRequest,
      timingsMs: timings,
      totalMs: Date.now() - started,
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    client.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`scenario failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
