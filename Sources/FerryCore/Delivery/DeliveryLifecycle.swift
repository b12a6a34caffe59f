/// What the ``WorkerPool`` tells about each task, so that state lives elsewhere.
public protocol DeliveryLifecycle: Sendable {
    /// A worker is about to push `task`. Return false to skip it (deleted meanwhile).
    func willPush(_ task: UploadTask) -> Bool
    /// A transient failure; the task goes back to the queue after `delay` seconds.
    func willRetry(_ task: UploadTask, after failure: PushFailure, delay: Double)
    /// The task ended for good.
    func finished(_ task: UploadTask, _ outcome: DeliveryOutcome)
}
