import Dispatch
import NIOConcurrencyHelpers

/// The single SQLite writer, shared fairly between agents.
///
/// GRDB runs write transactions one at a time in the order they were asked for, so an agent with 32
/// calls in flight would put 32 transactions ahead of every other agent's next write. Tool calls
/// hand their transaction to this scheduler instead: each agent has its own queue, and one serial
/// dispatch queue runs the transactions back to back, taking the agents in rotation (one
/// transaction of each waiting agent per round). An agent alone gets every turn; an agent that
/// arrives while another floods waits for the running transaction and at most one of the flood's.
/// The writer never idles between two transactions waiting for a Swift task to be scheduled, so a
/// single agent's burst runs as fast as before. At most `maximumWaitingPerAgent` transactions of
/// one agent wait; more are refused with `GatewayError.tooManyCallsWaiting` (429).
final class FairWriteScheduler: Sendable {
    typealias Job = @Sendable () -> Void

    struct State {
        var queues: [String: [Job]] = [:]
        /// Agents with waiting transactions, in the order their next turn comes.
        var rotation: [String] = []
    }

    let maximumWaitingPerAgent: Int
    private let state = NIOLockedValueBox(State())
    private let queue = DispatchQueue(label: "agent-gateway.fair-writer")

    init(maximumWaitingPerAgent: Int = 1024) {
        self.maximumWaitingPerAgent = maximumWaitingPerAgent
    }

    /// Runs `body` as one write transaction of `store`, in a turn of `agentID`.
    func write<T: Sendable>(
        agentID: String, store: any GatewayStore, _ body: @escaping @Sendable (any StoreWriter) throws -> T
    ) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let accepted = submit(agentID: agentID) {
                continuation.resume(with: Result { try store.writeNow(body) })
            }
            if !accepted { continuation.resume(throwing: GatewayError.tooManyCallsWaiting) }
        }
    }

    /// Queues `job` for `agentID`; `false` when the agent's queue is full.
    func submit(agentID: String, job: @escaping Job) -> Bool {
        let accepted = state.withLockedValue { state -> Bool in
            let queued = state.queues[agentID]?.count ?? 0
            guard queued < maximumWaitingPerAgent else { return false }
            if queued == 0 { state.rotation.append(agentID) }
            state.queues[agentID, default: []].append(job)
            return true
        }
        // One run per job: each runs whichever job's turn it is, so every job runs exactly once.
        if accepted { queue.async { self.runNext() } }
        return accepted
    }

    /// Transactions of `agentID` waiting (for tests and diagnostics).
    func waitingCount(agentID: String) -> Int { state.withLockedValue { $0.queues[agentID]?.count ?? 0 } }

    private func runNext() {
        let job = state.withLockedValue { state -> Job? in
            guard !state.rotation.isEmpty else { return nil }
            let agentID = state.rotation.removeFirst()
            var queue = state.queues[agentID] ?? []
            guard !queue.isEmpty else { return nil }
            let job = queue.removeFirst()
            if queue.isEmpty {
                state.queues[agentID] = nil
            } else {
                state.queues[agentID] = queue
                state.rotation.append(agentID)
            }
            return job
        }
        job?()
    }
}

/// Group commit of audit events: the audit event of a read is the only write a read makes, and one
/// transaction per read made the single writer the read path's bottleneck. Events wait here and go
/// into the database together, in one transaction that takes one turn at the fair writer (as the
/// pseudo-agent `audit-batch`); each call answers only once the transaction holding its event has
/// committed, so an acknowledged call's audit event is as durable as before. While a batch waits for
/// its turn, events keep joining it (at most `maximumBatch`; the rest start the next batch).
final class AuditBatcher: Sendable {
    typealias Waiter = CheckedContinuation<Void, any Error>

    private struct State {
        var pending: [(AuditEventRecord, Waiter)] = []
        var scheduled = false
    }

    static let pseudoAgent = "audit-batch"
    let maximumBatch: Int
    private let state = NIOLockedValueBox(State())

    init(maximumBatch: Int = 512) {
        self.maximumBatch = maximumBatch
    }

    /// Stores `event`; returns once the transaction that holds it has committed.
    func record(_ event: AuditEventRecord, writer: FairWriteScheduler, store: any GatewayStore) async throws {
        try await withCheckedThrowingContinuation { (waiter: Waiter) in
            let schedule = state.withLockedValue { state -> Bool in
                state.pending.append((event, waiter))
                if state.scheduled { return false }
                state.scheduled = true
                return true
            }
            if schedule { self.schedule(writer: writer, store: store) }
        }
    }

    private func schedule(writer: FairWriteScheduler, store: any GatewayStore) {
        let accepted = writer.submit(agentID: Self.pseudoAgent) { [self] in
            let batch = state.withLockedValue { state -> [(AuditEventRecord, Waiter)] in
                let taken = Array(state.pending.prefix(maximumBatch))
                state.pending.removeFirst(taken.count)
                return taken
            }
            let result = Result { try store.writeNow { store in for (event, _) in batch { try store.insertAuditEvent(event) } } }
            for (_, waiter) in batch { waiter.resume(with: result) }
            let again = state.withLockedValue { state -> Bool in
                state.scheduled = !state.pending.isEmpty
                return state.scheduled
            }
            if again { schedule(writer: writer, store: store) }
        }
        // The pseudo-agent has at most one batch waiting, far below the per-agent cap.
        if !accepted {
            let waiting = state.withLockedValue { state -> [(AuditEventRecord, Waiter)] in
                defer {
                    state.pending.removeAll()
                    state.scheduled = false
                }
                return state.pending
            }
            for (_, waiter) in waiting { waiter.resume(throwing: GatewayError.tooManyCallsWaiting) }
        }
    }

    /// Events waiting for their batch (for tests).
    var pendingCount: Int { state.withLockedValue { $0.pending.count } }
}

/// Decides which refusals that come in floods (rate limited, writer busy) leave an audit event: the
/// first of each kind per agent in every second. A flood of 429s thus costs at most one small row
/// per agent and second, instead of one per request; the others are not recorded.
final class RefusalAuditSampler: Sendable {
    private let lastSecond = NIOLockedValueBox<[String: Int64]>([:])

    func admit(agentID: String, kind: String, now: Int64) -> Bool {
        let key = kind + "/" + agentID
        return lastSecond.withLockedValue { lastSecond in
            let second = now / 1000
            if lastSecond[key] == second { return false }
            lastSecond[key] = second
            return true
        }
    }
}
