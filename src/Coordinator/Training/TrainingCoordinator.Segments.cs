using Akka.Actor;
using Akka.Event;
using NameRnn.Contracts;
using NameRnn.Model.Network;
using NameRnn.Model.Training;
using NameRnn.Worker;

namespace NameRnn.Coordinator.Training;

/// <summary>
/// Segments (<see cref="TrainingPlan.SegmentSteps"/>): the coordinator off the path of every step. The
/// workers keep replicas and are handed the work of many consecutive steps in one message each
/// (<see cref="ComputeSegment"/>); they send each other their block sums and take every step themselves,
/// as the processes of PyTorch's DDP do, and report to the coordinator once a segment, without gradients
/// (<see cref="SegmentComputed"/>). One of them sends the state at the segment's end
/// (<see cref="ReplicaState"/>), which the coordinator commits: it accounts for the segment's steps,
/// evaluates at an epoch's end, saves checkpoints. Up to <see cref="Protocol.SegmentsOut"/> segments are out at
/// once, so the workers never wait for a commit. When a worker of the segments out dies, becomes
/// unreachable, fails or loses its way, the coordinator goes back to the last state it committed: it
/// starts a new generation, sends that state to every live worker (which drops whatever it held of the
/// generation before) and hands out the steps after it again. The steps are a function of the state and
/// the step numbers, so the result is the same bits as a run without a failure. A worker that joins (or
/// comes back) makes the run go back the same way, so that it gets the committed state and work at once.
/// </summary>
public sealed partial class TrainingCoordinator
{
    /// <summary>Steps handed out together, and what became of them.</summary>
    private sealed class Segment(IReadOnlyList<StepWork> steps, IActorRef stateFrom)
    {
        public IReadOnlyList<StepWork> Steps { get; } = steps;
        public long First => Steps[0].Step;
        public long End => Steps[^1].Step + 1;
        /// <summary>The worker that sends the state at <see cref="End"/>.</summary>
        public IActorRef StateFrom { get; } = stateFrom;
        public ReplicaState?[]? StateParts { get; set; }
        public bool HasState => StateParts is { } parts && parts.All(p => p is not null);
        public bool Complete => Steps.All(s => s.Complete);
        public StepWork? StepOf(long step) => step >= First && step < End ? Steps[(int)(step - First)] : null;
    }

    private bool SegmentMode => _plan.Replicas && _plan.SegmentSteps > 0 && _plan.Options.AverageDecay == 0;

    /// <summary>Bumped each time the coordinator goes back to its state; what is older is dropped, here and by the workers.</summary>
    private long _generation = 1;

    /// <summary>The segments out, in step order; the first starts at the committed state's step.</summary>
    private readonly List<Segment> _segments = [];

    /// <summary>The workers whose replicas follow the current generation from a state the coordinator sent.</summary>
    private readonly HashSet<IActorRef> _lineage = [];

    /// <summary>How often each step failed on a worker, over the whole run.</summary>
    private readonly Dictionary<long, int> _stepFailures = [];

    private TimeSpan _lastProgress;
    private TimeSpan _committedAt;

    /// <summary>
    /// Hands out segments until <see cref="Protocol.SegmentsOut"/> are out, to the live workers of the lineage; a
    /// worker not in it (a new one, one back from unreachable, every one after going back) first gets the
    /// committed state, once no segment is out.
    /// </summary>
    private void DispatchSegments()
    {
        if (!Started || _requester is null || _stopEarly || _run!.Finished) return;
        var live = _workerOrder.Where(w => !_workers[w].Suspended).ToList();
        if (live.Count == 0) return;
        var newcomers = live.Where(w => !_lineage.Contains(w)).ToList();
        if (newcomers.Count > 0)
        {
            // As an elastic PyTorch job restarts from its checkpoint when a node joins: the newcomer starts at once.
            if (_segments.Count > 0)
            {
                GoBack($"{string.Join(", ", newcomers.Select(w => _workers[w].Id))} came in", failure: false);
                return;
            }
            foreach (var worker in newcomers)
            {
                TellRunState(worker, _generation);
                _lineage.Add(worker);
            }
        }
        var members = live.OrderBy(w => _workers[w].Id, StringComparer.Ordinal).ToArray();
        if (_segments.Count == 0) _lastProgress = Now;
        while (_segments.Count < Protocol.SegmentsOut)
        {
            var start = _segments.Count > 0 ? _segments[^1].End : _run.Step;
            if (start >= _run.TotalSteps) break;
            HandOut(start, members);
        }
    }

    /// <summary>
    /// Cuts the steps from <paramref name="start"/> on into units, about one per worker, and sends each
    /// worker its units: up to <see cref="TrainingPlan.SegmentSteps"/> steps, never past an epoch's end or
    /// a checkpoint, and no more names than fit a message well below the smallest frame size.
    /// </summary>
    private void HandOut(long start, IActorRef[] members)
    {
        var run = _run!;
        var endpoints = members.Select(w => _workers[w].BlockEndpoint).ToArray();
        var units = members.Select(_ => new List<ComputeGradients>()).ToArray();
        var bytes = new int[members.Length];
        var steps = new List<StepWork>();
        for (var number = start; number < run.TotalSteps && steps.Count < _plan.SegmentSteps; number++)
        {
            if (steps.Count > 0 && (number % run.StepsPerEpoch == 0 || (_plan.CheckpointEvery > 0 && number % _plan.CheckpointEvery == 0))) break;
            var microBatches = run.MicroBatchesOf(number);
            var step = new StepWork(number, microBatches, GradientTree.Units(microBatches.Count, members.Length, _plan.LargestUnit), run.LearningRateOf(number), members);
            var works = Enumerable.Range(0, step.Units.Count).Select(u => step.BatchesOf(u).Select(b => new MicroBatchWork(b.Names, b.Labels, b.NoiseSeed)).ToArray()).ToArray();
            var cost = new int[members.Length];
            for (var u = 0; u < works.Length; u++) cost[u % members.Length] += NameRnnSerializer.UnitOverhead + NameRnnSerializer.WorkSize(works[u]);
            if (steps.Count > 0 && bytes.Select((b, k) => b + cost[k]).Any(b => b > SegmentBytes)) break;
            for (var k = 0; k < members.Length; k++) bytes[k] += cost[k];
            for (var u = 0; u < works.Length; u++)
                units[u % members.Length].Add(new ComputeGradients(_plan.RunId, number, step.Units[u].First, number, null, works[u], microBatches.Count, step.LearningRate,
                    members, endpoints, _generation));
            steps.Add(step);
        }
        var segment = new Segment(steps, members[0]);
        _segments.Add(segment);
        for (var k = 0; k < members.Length; k++)
            if (units[k].Count > 0 || k == 0)
                members[k].Tell(new ComputeSegment(_plan.RunId, _generation, units[k].ToArray(), k == 0 ? segment.End : -1, members, endpoints));
    }

    /// <summary>The most bytes of names one worker's segment message carries, about: below the smallest frame size a node accepts (128 000 bytes).</summary>
    private const int SegmentBytes = 96 * 1024;

    private void OnSegmentComputed(SegmentComputed report)
    {
        if (!SegmentMode || !Started || report.RunId != _plan.RunId || report.Generation != _generation) return;
        foreach (var unit in report.Units)
        {
            if (_segments.Find(s => s.StepOf(unit.Step) is not null) is not { } segment) continue;
            var step = segment.StepOf(unit.Step)!;
            var index = step.UnitAt(unit.MicroBatch);
            if (index < 0 || step.Results[index] is not null) continue;
            var (first, count) = step.Units[index];
            if (unit.MicroBatches != count || unit.Count != step.BatchesOf(index).Sum(b => b.Names.Length))
            {
                GoBack($"a malformed report for step {unit.Step} {step.Describe(index)} ({unit.MicroBatches} micro-batches, {unit.Count} names)");
                return;
            }
            step.Results[index] = new GradientBlock(first, count, new MicroBatchGradients(unit.LossSum, unit.Count, [], unit.Correct));
            step.ComputedBy[index] = _workers.GetValueOrDefault(Sender)?.Id;
            step.Received++;
        }
        _lastProgress = Now;
        Commit();
    }

    private void OnWorkerState(ReplicaState part)
    {
        if (!SegmentMode || !Started || part.RunId != _plan.RunId || part.Generation != _generation) return;
        if (!ReplicaStates.IsPart(part) || _segments.Find(s => s.End == part.Version && s.StateFrom.Equals(Sender)) is not { } segment) return;
        if (segment.StateParts is not { } parts || parts.Length != part.Parts) segment.StateParts = parts = new ReplicaState?[part.Parts];
        parts[part.Part] = part;
        _lastProgress = Now;
        Commit();
    }

    /// <summary>Commits the segments that are in, in order, then hands out more.</summary>
    private void Commit()
    {
        while (_requester is not null && _segments.Count > 0 && _segments[0].Complete && _segments[0].HasState)
        {
            var segment = _segments[0];
            _segments.RemoveAt(0);
            if (!Commit(segment)) return;
        }
        DispatchSegments();
    }

    /// <summary>Accounts for a segment's steps and takes its state as the run's; false when the run ended or failed.</summary>
    private bool Commit(Segment segment)
    {
        var run = _run!;
        var parts = segment.StateParts!.Select(p => p!).ToArray();
        var state = parts[0];
        if (state.Values.Length != _plan.Model.ParameterCount || state.Optimizer != _plan.Options.Optimizer || parts.Skip(1).Any(p => p.Values.Length != state.Values.Length))
        {
            GoBack($"a malformed state from {_workers.GetValueOrDefault(segment.StateFrom)?.Id ?? "a worker"} ({state.Values.Length} values, optimizer {state.Optimizer})");
            return false;
        }
        var perStep = (Now - _committedAt).TotalSeconds / segment.Steps.Count;
        _committedAt = Now;
        StepOutcome? last = null;
        foreach (var step in segment.Steps)
        {
            var sum = GradientTree.Combine(step.Results.Select(r => r!).ToList(), step.MicroBatches.Count);
            var outcome = new StepOutcome(step.Step, (int)(step.Step / run.StepsPerEpoch), (0.0 + sum.LossSum) / sum.Count, step.LearningRate, double.NaN, sum.Count,
                (step.Step + 1) % run.StepsPerEpoch == 0, sum.Correct);
            if (!Account(step, outcome, perStep)) return false;
            last = outcome;
        }
        var end = segment.End;
        _run = new TrainingRun(_plan.Options, _plan.Model, _plan.Train, new RunState((int)(end / run.StepsPerEpoch), (int)(end % run.StepsPerEpoch), end,
            state.Values, null, ReplicaStates.ToOptimizerState(parts)));
        if (last!.EpochEnded) CompleteEpoch(last);
        var every = _plan.CheckpointEvery;
        if ((every > 0 && end % every == 0) || (every <= 0 && last.EpochEnded)) SaveCheckpoint();
        if (_requester is null) return false;
        if (_run.Finished || _stopEarly)
        {
            Finish();
            return false;
        }
        return true;
    }

    /// <summary>
    /// Drops every segment out and starts a new generation from the committed state: each live worker gets
    /// it and the steps after it are handed out again.
    /// </summary>
    private void GoBack(string reason, bool failure = true)
    {
        const string template = "{Reason}: training goes back to step {Step}, the last state the coordinator committed, and goes on with {Workers} workers";
        if (failure) _log.Warning(template, reason, _run!.Step, LiveWorkers);
        else _log.Info(template, reason, _run!.Step, LiveWorkers);
        _generation++;
        _segments.Clear();
        _lineage.Clear();
        DispatchSegments();
    }

    /// <summary>A worker of the lineage is gone, unreachable or lost: with segments out, the run goes back.</summary>
    private void LeaveLineage(IActorRef worker, string why)
    {
        if (_lineage.Remove(worker) && _segments.Count > 0) GoBack(why);
    }

    /// <summary>A unit of a segment failed: the run goes back, unless the step has failed too often.</summary>
    private void OnSegmentFailed(GradientsFailed failed)
    {
        if (failed.RunId != _plan.RunId || _segments.Find(s => s.StepOf(failed.Step) is not null) is not { } segment) return;
        var failures = _stepFailures[failed.Step] = _stepFailures.GetValueOrDefault(failed.Step) + 1;
        var step = segment.StepOf(failed.Step)!;
        var unit = Math.Max(0, step.UnitAt(failed.MicroBatch));
        var worker = _workers.GetValueOrDefault(Sender)?.Id ?? Sender.Path.ToString();
        if (failures >= _plan.MaxAttemptsPerMicroBatch)
        {
            var names = string.Join(", ", step.BatchesOf(unit).SelectMany(b => b.Names));
            Fail($"{step.Describe(unit)} of step {failed.Step} failed {failures} times (last: {failed.Reason}); its names: {names}");
            return;
        }
        GoBack($"{step.Describe(unit)} of step {failed.Step} failed on {worker} (failure {failures} of at most {_plan.MaxAttemptsPerMicroBatch}): {failed.Reason}");
    }

    /// <summary>
    /// With no report or state for <see cref="TrainingPlan.AssignmentTimeout"/> per step of the oldest segment
    /// out (a worker hears from the coordinator once a segment, and a long step is no failure), the run goes back.
    /// </summary>
    private void OnSegmentTick()
    {
        var limit = _segments.Count > 0 ? _plan.AssignmentTimeout * _segments[0].Steps.Count : TimeSpan.MaxValue;
        if (Now - _lastProgress > limit)
            GoBack($"no word from the workers for {limit.TotalSeconds:F0} s ({_plan.AssignmentTimeout.TotalSeconds:F0} s per step of the segment)");
        else
            DispatchSegments();
    }
}
