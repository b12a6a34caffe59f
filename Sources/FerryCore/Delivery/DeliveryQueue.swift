import Foundation

/// The tasks waiting for a worker, handed out in batches that one `incus file push` call can
/// deliver. Its bound is kept by ``Capacity``, which counts every unfinished task, not only
/// the waiting ones.
///
/// A destination (container and path) belongs to one task at a time, from the moment the
/// task is handed out until ``release(_:)``, retry waits included: two uploads to the same
/// path are never pushed at once, and the later one is pushed last, so it wins.
///
/// Each destination has a lane: a FIFO of its tasks. A lane is *ready* when its first task
/// may go (nobody holds the destination, or that task does); ready lanes wait in one FIFO
/// and in one FIFO per batch key. Handing out, queueing and releasing cost O(1) however
/// long the queue and whatever its mix of destinations: a backlog of uploads to one path
/// is one lane, not a scan (it used to cut ingest from 1,662/s to 532/s). Memory holds the
/// waiting tasks and one lane per destination that has some, nothing more.
///
/// Deliveries can be paused, for every container or for some (``apply(_:at:)``): their
/// tasks still queue, and wait. A paused container's ready lanes are set aside as the
/// workers meet them, and put back when it resumes: pausing costs nothing per task. The
/// same way, a remote with `limitPerRemote` pushes running has its lanes set aside until
/// one of them ends (``pushEnded(_:)``), so one slow host cannot take every worker.
public final class DeliveryQueue: @unchecked Sendable {
    private struct Lane {
        /// The destination's waiting tasks, oldest first.
        var tasks = FIFO<UploadTask>()
        /// The task that holds the destination (handed out, or waiting to retry).
        var holder: String?
        /// Set while the lane is ready: the stamp of its entries in the ready FIFOs (older
        /// entries of the lane are stale and skipped).
        var readyStamp: UInt64?
        /// Set while the lane waits for its container to resume (its first task may go).
        var parked = false

        var mayGo: Bool { tasks.first.map { holder == nil || holder == $0.id } ?? false }
    }

    /// A ready lane as the ready FIFOs hold it; stale once the lane's stamp moved on.
    private struct ReadyEntry {
        var destination: String
        var stamp: UInt64
    }

    // NSCondition rather than a semaphore: a waiting task may be ineligible (its
    // destination is busy), so "something is queued" is not "something can be taken".
    private let condition = NSCondition()
    private var lanes: [String: Lane] = [:]
    private var ready = FIFO<ReadyEntry>()
    private var readyByBatch: [String: FIFO<ReadyEntry>] = [:]
    private var nextStamp: UInt64 = 0
    private var waiting = 0
    private var pauses = DeliveryPauses()
    /// Why lanes are set aside.
    private enum Hold: Hashable {
        case paused(container: String)
        case busy(remote: String)
    }
    /// The parked lanes, by what holds them.
    private var parked: [Hold: [String]] = [:]
    /// The most pushes into one remote at once (nil: only the workers bound them).
    private let limitPerRemote: Int?
    /// Pushes into each remote running now.
    private var pushingByRemote: [String: Int] = [:]
    /// Whether a worker is gathering a batch now (see ``next(limit:linger:)``).
    private var lingering = false
    /// Monotonic seconds of the last two arrivals (new tasks and retries alike).
    private var lastArrival = -Double.infinity
    private var arrivalBefore = -Double.infinity
    /// Arrivals this close together, the last this recent, are a stream.
    static let streamGap = 0.005

    /// - Parameter limitPerRemote: the most pushes into one remote at once
    ///   (`--workers-per-remote`); nil: no bound but the workers'.
    public init(limitPerRemote: Int? = nil) {
        self.limitPerRemote = limitPerRemote
    }

    /// Appends `task` (a new one, one recovered at start-up, or one to try again: that one
    /// still holds its destination, and goes before the later tasks for it).
    public func enqueue(_ task: UploadTask) {
        condition.lock()
        defer { condition.unlock() }
        // In place (the dictionary's modify accessor): a copy of the lane would copy its
        // tasks on every append, and a backlog to one path would cost O(n) per upload.
        inLane(task.destinationKey) { lane in
            if lane.holder == task.id {
                lane.tasks.prepend(task)
            } else {
                lane.tasks.append(task)
            }
        }
        waiting += 1
        arrivalBefore = lastArrival
        lastArrival = Monotonic.seconds()
        markReadyIfItMayGo(task.destinationKey)
    }

    /// Whether tasks are arriving in a stream now (the last two within ``streamGap`` of
    /// each other, the last within it of now): a push that went out at once would carry
    /// one file while the next ones are a few milliseconds away.
    public var arrivalsStreaming: Bool {
        condition.lock()
        defer { condition.unlock() }
        let now = Monotonic.seconds()
        return lastArrival - arrivalBefore < Self.streamGap && now - lastArrival < Self.streamGap
    }

    /// The oldest task whose destination is free, with up to `limit - 1` others of the same
    /// ``UploadTask/batchKey`` and distinct destinations; blocks until there is one.
    ///
    /// - Parameter linger: with fewer than `limit` tasks waiting, wait up to this many
    ///   seconds for more before taking a batch (a full one goes at once). The caller asks
    ///   for it while other pushes run or tasks arrive in a stream, so that under load one
    ///   push carries many files instead of each worker pushing a few; an idle server
    ///   pushes at once. One worker lingers at a time: when several waited side by side,
    ///   the first to wake took the batch and the others went out with a file or two each.
    public func next(limit: Int = 1, linger: Double? = nil) -> [UploadTask] {
        let limit = max(1, limit)
        var linger = limit > 1 ? linger : nil
        condition.lock()
        defer { condition.unlock() }
        while true {
            if !ready.isEmpty, let wait = linger {
                if lingering {
                    // Another worker is gathering; this one's turn comes after it took.
                    condition.wait()
                    continue
                }
                linger = nil
                lingering = true
                let deadline = Date(timeIntervalSinceNow: wait)
                while waiting < limit && condition.wait(until: deadline) {}
                lingering = false
                // Whoever waited for the gatherer may gather next (or take what is left);
                // they run once this worker has taken its batch and unlocked.
                condition.broadcast()
            }
            if let batch = takeBatch(limit: limit) { return batch }
            condition.wait()
        }
    }

    /// `task` is finished with (delivered, failed for good, deleted): its destination is
    /// free for the next task.
    public func release(_ task: UploadTask) {
        condition.lock()
        defer { condition.unlock() }
        guard lanes[task.destinationKey]?.holder == task.id else { return }
        let empty = inLane(task.destinationKey) { lane in
            lane.holder = nil
            return lane.tasks.isEmpty
        }
        if empty {
            lanes[task.destinationKey] = nil
        } else {
            markReadyIfItMayGo(task.destinationKey)
        }
    }

    /// Pauses or resumes deliveries (see ``DeliveryPauses/Change``). Pushes running now
    /// finish; the next ones wait (or go, after a resume).
    ///
    /// - Returns: the pauses in force after the change.
    @discardableResult
    public func apply(_ change: DeliveryPauses.Change, at time: Double = WallClock.now()) -> DeliveryPauses {
        condition.lock()
        defer { condition.unlock() }
        pauses.apply(change, at: time)
        for case .paused(let container) in parked.keys where !pauses.holds(container) {
            unpark(.paused(container: container))
        }
        condition.broadcast()
        return pauses
    }

    /// A push of `batch` (handed out by ``next(limit:linger:)``) ended, whatever its
    /// outcome: its remote may take another.
    public func pushEnded(_ batch: [UploadTask]) {
        guard limitPerRemote != nil, let remote = batch.first?.request.remote else { return }
        condition.lock()
        defer { condition.unlock() }
        pushingByRemote[remote] = max(0, (pushingByRemote[remote] ?? 1) - 1)
        if pushingByRemote[remote] == 0 { pushingByRemote[remote] = nil }
        unpark(.busy(remote: remote))
    }

    /// Puts the lanes `hold` set aside back in the ready FIFOs (those it still holds are
    /// set aside again when met). Called with the lock held.
    private func unpark(_ hold: Hold) {
        guard let destinations = parked.removeValue(forKey: hold) else { return }
        for destination in destinations where lanes[destination] != nil {
            inLane(destination) { $0.parked = false }
            markReadyIfItMayGo(destination)
        }
    }

    /// What holds a lane whose first task is `task`, if anything.
    private func hold(of task: UploadTask) -> Hold? {
        if pauses.holds(task.request.container) { return .paused(container: task.request.container) }
        if let limitPerRemote, let remote = task.request.remote,
            pushingByRemote[remote, default: 0] >= limitPerRemote
        {
            return .busy(remote: remote)
        }
        return nil
    }

    /// The pauses in force.
    public var paused: DeliveryPauses {
        condition.lock()
        defer { condition.unlock() }
        return pauses
    }

    /// Tasks waiting for a worker.
    public var depth: Int {
        condition.lock()
        defer { condition.unlock() }
        return waiting
    }

    /// Puts the lane of `destination` in the ready FIFOs if its first task may go and it is
    /// not there yet. Called with the lock held.
    private func markReadyIfItMayGo(_ destination: String) {
        guard let lane = lanes[destination], lane.readyStamp == nil, !lane.parked, lane.mayGo,
            let first = lane.tasks.first
        else {
            return
        }
        nextStamp += 1
        let stamp = nextStamp
        inLane(destination) { $0.readyStamp = stamp }
        ready.append(ReadyEntry(destination: destination, stamp: stamp))
        readyByBatch[first.batchKey, default: FIFO()].append(
            ReadyEntry(destination: destination, stamp: stamp))
        // While a worker gathers, a signal could wake one of those waiting their turn
        // instead of it, and a full batch would wait for the deadline.
        if lingering { condition.broadcast() } else { condition.signal() }
    }

    /// The next entry of `fifo` whose lane is still ready with that stamp, parking those
    /// of paused containers on the way.
    private func popReady(_ fifo: inout FIFO<ReadyEntry>) -> String? {
        while let entry = fifo.popFirst() {
            guard let lane = lanes[entry.destination], lane.readyStamp == entry.stamp else { continue }
            // A ready lane has a first task: that is what made it ready.
            guard let hold = hold(of: lane.tasks.first!) else { return entry.destination }
            inLane(entry.destination) { lane in
                lane.readyStamp = nil
                lane.parked = true
            }
            parked[hold, default: []].append(entry.destination)
        }
        return nil
    }

    /// Hands out the first task of a ready lane. Called with the lock held.
    private func take(_ destination: String) -> UploadTask {
        let task = inLane(destination) { lane in
            // A ready lane has a first task: that is what made it ready.
            let task = lane.tasks.popFirst()!
            lane.holder = task.id
            lane.readyStamp = nil
            return task
        }
        waiting -= 1
        return task
    }

    /// Runs `change` on the lane of `destination` in place, making it if there is none.
    private func inLane<Result>(_ destination: String, _ change: (inout Lane) -> Result) -> Result {
        change(&lanes[destination, default: Lane()])
    }

    private func takeBatch(limit: Int) -> [UploadTask]? {
        // Everything paused: the lanes stay ready, for when it resumes.
        guard !pauses.all else { return nil }
        guard let destination = popReady(&ready) else { return nil }
        let first = take(destination)
        var batch = [first]
        if var fellows = readyByBatch[first.batchKey] {
            while batch.count < limit, let other = popReady(&fellows) {
                batch.append(take(other))
            }
            readyByBatch[first.batchKey] = fellows.isEmpty ? nil : fellows
        }
        if limitPerRemote != nil, let remote = first.request.remote {
            pushingByRemote[remote, default: 0] += 1
        }
        return batch
    }
}
