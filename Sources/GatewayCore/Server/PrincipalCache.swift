import NIOConcurrencyHelpers

/// The count of changes to who may call: every store operation that revokes an agent or a device,
/// ends a session, blocks or unblocks a person, changes a role or an entitlement, or adds a grant
/// increments the setting `principalEpoch` in the same transaction (a store implementation must
/// do so; `StoreConformanceTests` checks it). Any process that changes the database (the admin
/// CLI included) thus moves the epoch.
public enum PrincipalEpoch {
    public static let settingName = "principalEpoch"

    static func read(_ store: any StoreReader) throws -> String { try store.setting(settingName) ?? "0" }
}

/// Authenticated sessions kept for a short time, so that a call with a known token costs one read
/// of the epoch instead of the five lookups of authentication. An entry is used only while the
/// epoch it was read with is still the database's and its session has not expired: a revocation,
/// made here or by another process, is effective at the very next call. At most `capacity`
/// entries, each at most `lifetimeNanoseconds` old.
final class PrincipalCache: Sendable {
    struct Entry: Sendable {
        var principal: Principal
        var epoch: String
        var cachedAt: UInt64
    }

    let capacity: Int
    let lifetimeNanoseconds: UInt64
    private let entries = NIOLockedValueBox<[String: Entry]>([:])

    init(capacity: Int = 4096, lifetimeSeconds: UInt64 = 60) {
        self.capacity = capacity
        self.lifetimeNanoseconds = lifetimeSeconds * 1_000_000_000
    }

    /// The entry for a token hash, if it is young enough.
    func entry(_ tokenHash: String) -> Entry? {
        let now = GatewayClock.monotonicNanoseconds()
        return entries.withLockedValue { entries in
            guard let entry = entries[tokenHash] else { return nil }
            guard now &- entry.cachedAt < lifetimeNanoseconds else {
                entries[tokenHash] = nil
                return nil
            }
            return entry
        }
    }

    func store(_ principal: Principal, epoch: String, tokenHash: String) {
        let now = GatewayClock.monotonicNanoseconds()
        entries.withLockedValue { entries in
            if entries.count >= capacity {
                entries = entries.filter { now &- $0.value.cachedAt < lifetimeNanoseconds }
                if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            }
            entries[tokenHash] = Entry(principal: principal, epoch: epoch, cachedAt: now)
        }
    }

    func forget(_ tokenHash: String) {
        entries.withLockedValue { _ = $0.removeValue(forKey: tokenHash) }
    }
}
