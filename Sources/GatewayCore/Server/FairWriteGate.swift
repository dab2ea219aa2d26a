import NIOConcurrencyHelpers

/// Turns at the single SQLite writer, shared fairly between agents.
///
/// GRDB runs write transactions one at a time in the order they were asked for, so an agent with 32
/// calls in flight would put 32 transactions ahead of every other agent's next write. Tool calls
/// take a turn here first: at most `permits` of them hold the writer at once (one committing and
/// one ready, so that the writer never idles between two), and when a turn ends it goes to the
/// waiting agent that holds the fewest turns at that moment, the longest-waiting agent first among
/// equals (a rotation), not to the oldest waiting call. An agent alone gets every turn; an agent
/// that arrives while another floods gets the next free turn. A new call never jumps ahead of agents
/// that are waiting. At most `maximumWaitingPerAgent` calls of one agent wait; more are refused with
/// `GatewayError.tooManyCallsWaiting` (429), which bounds the memory and the wait a flood can build up.
final class FairWriteGate: Sendable {
    struct State {
        var available: Int
        var waiting: [String: [CheckedContinuation<Void, any Error>]] = [:]
        /// Agents with waiting calls, in the order their next turn comes among equals.
        var rotation: [String] = []
        /// Turns each agent holds now.
        var held: [String: Int] = [:]
    }

    let maximumWaitingPerAgent: Int
    private let state: NIOLockedValueBox<State>

    init(permits: Int = 2, maximumWaitingPerAgent: Int = 64) {
        self.maximumWaitingPerAgent = maximumWaitingPerAgent
        state = NIOLockedValueBox(State(available: max(1, permits)))
    }

    /// Runs `body` (one write transaction) in a turn of `agentID`.
    func withTurn<T>(agentID: String, _ body: () async throws -> T) async throws -> T {
        try await acquire(agentID)
        do {
            let result = try await body()
            release(agentID)
            return result
        } catch {
            release(agentID)
            throw error
        }
    }

    /// Calls of `agentID` waiting for a turn, and turns it holds (for tests and diagnostics).
    func waitingCount(agentID: String) -> Int { state.withLockedValue { $0.waiting[agentID]?.count ?? 0 } }
    func heldCount(agentID: String) -> Int { state.withLockedValue { $0.held[agentID] ?? 0 } }

    private func acquire(_ agentID: String) async throws {
        enum Decision { case go, wait, refuse }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let decision = state.withLockedValue { state -> Decision in
                if state.available > 0, state.rotation.isEmpty {
                    state.available -= 1
                    state.held[agentID, default: 0] += 1
                    return .go
                }
                let queued = state.waiting[agentID]?.count ?? 0
                if queued >= maximumWaitingPerAgent { return .refuse }
                if queued == 0 { state.rotation.append(agentID) }
                state.waiting[agentID, default: []].append(continuation)
                return .wait
            }
            switch decision {
            case .go: continuation.resume()
            case .refuse: continuation.resume(throwing: GatewayError.tooManyCallsWaiting)
            case .wait: break
            }
        }
    }

    private func release(_ agentID: String) {
        let next = state.withLockedValue { state -> CheckedContinuation<Void, any Error>? in
            if let held = state.held[agentID], held > 1 { state.held[agentID] = held - 1 } else { state.held[agentID] = nil }
            guard !state.rotation.isEmpty else {
                state.available += 1
                return nil
            }
            // The waiting agent holding the fewest turns; the first in rotation among equals.
            var chosen = 0
            var fewest = Int.max
            for (index, candidate) in state.rotation.enumerated() {
                let held = state.held[candidate] ?? 0
                if held < fewest {
                    fewest = held
                    chosen = index
                }
                if held == 0 { break }
            }
            let next = state.rotation.remove(at: chosen)
            var queue = state.waiting[next] ?? []
            let continuation = queue.removeFirst()
            if queue.isEmpty {
                state.waiting[next] = nil
            } else {
                state.waiting[next] = queue
                state.rotation.append(next)
            }
            state.held[next, default: 0] += 1
            return continuation  // the turn passes straight to it
        }
        next?.resume()
    }
}

/// At most `perAgent` tool calls of one agent run at once; the agent's other calls wait their turn,
/// first come first served, before doing any work. Together with `FairWriteGate` this gives each
/// agent a fair share of the gateway, not only of the writer: an agent with 32 calls in flight keeps
/// `perAgent` of them busy and parks the rest, so the CPU is not spent on 32 calls at once while
/// another agent's single call waits behind them. At most `maximumWaitingPerAgent` calls of one
/// agent wait; more are refused with 429.
final class AgentCallSlots: Sendable {
    struct Agent {
        var running = 0
        var waiting: [CheckedContinuation<Void, any Error>] = []
    }

    let perAgent: Int
    let maximumWaitingPerAgent: Int
    private let agents = NIOLockedValueBox<[String: Agent]>([:])

    init(perAgent: Int = 4, maximumWaitingPerAgent: Int = 64) {
        self.perAgent = max(1, perAgent)
        self.maximumWaitingPerAgent = maximumWaitingPerAgent
    }

    func withSlot<T>(agentID: String, _ body: () async throws -> T) async throws -> T {
        try await acquire(agentID)
        do {
            let result = try await body()
            release(agentID)
            return result
        } catch {
            release(agentID)
            throw error
        }
    }

    /// Calls of `agentID` waiting for a slot, and running (for tests and diagnostics).
    func waitingCount(agentID: String) -> Int { agents.withLockedValue { $0[agentID]?.waiting.count ?? 0 } }
    func runningCount(agentID: String) -> Int { agents.withLockedValue { $0[agentID]?.running ?? 0 } }

    private func acquire(_ agentID: String) async throws {
        enum Decision { case go, wait, refuse }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let decision = agents.withLockedValue { agents -> Decision in
                var agent = agents[agentID] ?? Agent()
                defer { agents[agentID] = agent }
                if agent.running < perAgent, agent.waiting.isEmpty {
                    agent.running += 1
                    return .go
                }
                if agent.waiting.count >= maximumWaitingPerAgent { return .refuse }
                agent.waiting.append(continuation)
                return .wait
            }
            switch decision {
            case .go: continuation.resume()
            case .refuse: continuation.resume(throwing: GatewayError.tooManyCallsWaiting)
            case .wait: break
            }
        }
    }

    private func release(_ agentID: String) {
        let next = agents.withLockedValue { agents -> CheckedContinuation<Void, any Error>? in
            guard var agent = agents[agentID] else { return nil }
            if agent.waiting.isEmpty {
                agent.running -= 1
                agents[agentID] = agent.running > 0 ? agent : nil
                return nil
            }
            let next = agent.waiting.removeFirst()
            agents[agentID] = agent
            return next  // the slot passes straight to it
        }
        next?.resume()
    }
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
