using Akka.Actor;
using Akka.TestKit;
using Akka.TestKit.Xunit2;
using NameRnn.Contracts;
using NameRnn.Model.Data;
using NameRnn.Model.Network;
using NameRnn.Model.Training;
using NameRnn.Worker;

namespace NameRnn.Tests.Coordinator;

/// <summary>
/// Real gradient workers (TorchSharp) keeping replicas, with a probe as their coordinator that never sends
/// parameters after the first state: what they compute for the next step is checked against one engine
/// and the coordinator's own <see cref="TrainingRun"/>.
/// </summary>
public class ReplicaWorkerTests() : TestKit(TorchDispatcher.Hocon(localThreads: null))
{
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);
    private const string RunId = "run-r";

    private static readonly LabelledName[] Train =
        [new("Abe", 0), new("Bo", 1), new("Cyd", 2), new("Dee", 1), new("Eloise", 0), new("Fu", 2), new("Gustavsson", 1), new("Hal", 0)];

    private static readonly TrainingOptions Options = new()
    {
        Epochs = 1, BatchSize = 4, MicroBatch = 1, Cell = Cells.Gru, Hidden = 5, Optimizer = Optimizers.Adam, LearningRate = 0.05,
        WeightDecay = 0.01, Schedule = Schedules.Cosine, ClipNorm = 0.5, ClassWeightPower = 0, Dropout = 0.3, Seed = 3,
    };

    private static readonly ModelConfig Config = Options.Model(3);

    private (IActorRef Worker, TestProbe Coordinator) Start(string id, TestProbe? coordinator = null)
    {
        coordinator ??= CreateTestProbe();
        var worker = Sys.ActorOf(GradientWorker.Props(coordinator.Ref, id));
        coordinator.ExpectMsg<RegisterWorker>(Wait);
        worker.Tell(new WorkerAccepted(RunId, Config.ToSpec(), null, Options.Dropout, Options.LabelSmoothing), coordinator.Ref);
        return (worker, coordinator);
    }

    private static void SendState(IActorRef worker, TrainingRun run, IActorRef from, long generation = 0)
    {
        foreach (var message in ReplicaStates.ToMessages(RunId, run.ParametersVersion, run.Parameters, run.OptimizerState, Options.Momentum, Options.WeightDecay, Options.ClipNorm, generation))
            worker.Tell(message, from);
    }

    private static ComputeGradients Work(TrainingRun run, long step, int first, int count, IActorRef[] peers, long generation = 0)
    {
        var batches = run.MicroBatchesOf(step).Skip(first).Take(count).Select(b => new MicroBatchWork(b.Names, b.Labels, b.NoiseSeed)).ToArray();
        return new ComputeGradients(RunId, step, first, step, null, batches, run.MicroBatchesOf(step).Count, run.LearningRateOf(step), peers, null, generation);
    }

    /// <summary>The state parts a worker sends, in part order.</summary>
    private static List<ReplicaState> ExpectState(TestProbe probe)
    {
        var first = probe.ExpectMsg<ReplicaState>(Wait);
        var parts = new List<ReplicaState> { first };
        while (parts.Count < first.Parts) parts.Add(probe.ExpectMsg<ReplicaState>(Wait));
        return parts.OrderBy(p => p.Part).ToList();
    }

    [Fact]
    public void Two_workers_take_a_segment_of_steps_among_themselves_report_once_and_send_the_state_the_coordinator_would_have()
    {
        // Two epochs of two steps: a segment of all four, the workers' only message from the coordinator after the state.
        var options = Options with { Epochs = 2 };
        var start = new TrainingRun(options, Config, Train, ParameterInit.Create(Config, Options.Seed));
        var (a, coordinator) = Start("a");
        var (b, _) = Start("b", coordinator);
        IActorRef[] peers = [a, b];
        foreach (var worker in peers) SendState(worker, start, coordinator.Ref, generation: 1);
        ComputeSegment Segment(int first, long stateAt) =>
            new(RunId, 1, Enumerable.Range(0, 4).Select(step => Work(start, step, first, 2, peers, generation: 1)).ToArray(), stateAt, peers, ["", ""]);
        a.Tell(Segment(0, stateAt: 4), coordinator.Ref);
        b.Tell(Segment(2, stateAt: -1), coordinator.Ref);

        // The reference: one engine and the coordinator's own run, step by step.
        var run = new TrainingRun(options, Config, Train, ParameterInit.Create(Config, Options.Seed));
        using var engine = new GradientEngine(Config, null, Options.Dropout, Options.LabelSmoothing);
        var expected = new List<GradientBlock>();
        for (var step = 0; step < 4; step++)
        {
            var blocks = Reference(run, engine);
            expected.AddRange(blocks.Select(block => block with { First = block.First + 10 * step }));
            run.Apply(blocks);
        }

        var messages = Enumerable.Range(0, 2 + run.OptimizerState.Buffers.Length + 1).Select(_ => coordinator.ExpectMsg<object>(Wait)).ToList();
        var reports = messages.OfType<SegmentComputed>().ToList();
        Assert.Equal(2, reports.Count);
        var units = reports.SelectMany(r => r.Units).ToList();
        Assert.All(units, u => Assert.Empty(u.Gradients));
        Assert.All(reports, r => Assert.Equal(1, r.Generation));
        Assert.Equal(expected.Select(e => (e.First, BitConverter.DoubleToInt64Bits(e.Sum.LossSum), e.Sum.Count)).Order(),
            units.Select(u => ((int)(u.MicroBatch + 10 * u.Step), BitConverter.DoubleToInt64Bits(u.LossSum), u.Count)).Order());
        var state = messages.OfType<ReplicaState>().OrderBy(p => p.Part).ToList();
        Assert.All(state, p => Assert.Equal((4L, 1L), (p.Version, p.Generation)));
        Assert.Equal(Bits(run.Parameters), Bits(state[0].Values));
        Assert.Equal(run.OptimizerState.Steps, state[0].OptimizerSteps);
        Assert.Equal(run.OptimizerState.Buffers.Select(Bits), state.Skip(1).Select(p => Bits(p.Values)));
        coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(300));

        // The coordinator goes back to step 2 with a new generation: what the workers held is dropped, and the
        // same steps from the same state come to the same bits; a block or segment of the old generation changes nothing.
        var back = new TrainingRun(options, Config, Train, ParameterInit.Create(Config, Options.Seed));
        back.Apply(expected.Where(e => e.First < 10).Select(e => e with { First = e.First % 10 }).ToList());
        back.Apply(expected.Where(e => e.First is >= 10 and < 20).Select(e => e with { First = e.First % 10 }).ToList());
        foreach (var worker in peers) SendState(worker, back, coordinator.Ref, generation: 2);
        a.Tell(new ComputeSegment(RunId, 1, [Work(back, 2, 0, 2, peers, generation: 1)], 4, peers, ["", ""]), coordinator.Ref);
        ComputeSegment Again(int first, long stateAt) =>
            new(RunId, 2, Enumerable.Range(2, 2).Select(step => Work(back, step, first, 2, peers, generation: 2)).ToArray(), stateAt, peers, ["", ""]);
        b.Tell(Again(2, stateAt: 4), coordinator.Ref);
        a.Tell(Again(0, stateAt: -1), coordinator.Ref);
        var again = Enumerable.Range(0, 2 + state.Count).Select(_ => coordinator.ExpectMsg<object>(Wait)).ToList();
        Assert.Equal(2, again.OfType<SegmentComputed>().Count(r => r.Generation == 2));
        var stateAgain = again.OfType<ReplicaState>().OrderBy(p => p.Part).ToList();
        Assert.All(stateAgain, p => Assert.Equal((4L, 2L), (p.Version, p.Generation)));
        Assert.Equal(Bits(run.Parameters), Bits(stateAgain[0].Values));
        coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
    }

    /// <summary>The block sums of the current step as one engine computes them at the run's parameters: the independent reference.</summary>
    private static List<GradientBlock> Reference(TrainingRun run, GradientEngine engine)
    {
        engine.LoadParameters(run.ParametersVersion, run.Parameters);
        var parts = run.MicroBatches().Select(b => engine.Compute(b.Names, b.Labels, b.NoiseSeed)).ToList();
        return [new(0, 2, GradientTree.Reduce(parts[..2])), new(2, 2, GradientTree.Reduce(parts[2..]))];
    }

    private static int[] Bits(float[] values) => values.Select(BitConverter.SingleToInt32Bits).ToArray();

    [Fact]
    public void Two_workers_take_the_step_from_each_others_blocks_and_compute_the_next_step_as_the_coordinator_would()
    {
        var run = new TrainingRun(Options, Config, Train, ParameterInit.Create(Config, Options.Seed));
        var (a, coordinator) = Start("a");
        var (b, _) = Start("b", coordinator);
        IActorRef[] peers = [a, b];
        foreach (var worker in peers) SendState(worker, run, coordinator.Ref);
        foreach (var step in new long[] { 0, 1 })
        {
            a.Tell(Work(run, step, 0, 2, peers), coordinator.Ref);
            b.Tell(Work(run, step, 2, 2, peers), coordinator.Ref);
        }
        var replies = Enumerable.Range(0, 4).Select(_ => coordinator.ExpectMsg<GradientsComputed>(Wait)).ToDictionary(r => (r.Step, r.MicroBatch));

        using var engine = new GradientEngine(Config, null, Options.Dropout, Options.LabelSmoothing);
        foreach (var step in new long[] { 0, 1 })
        {
            var expected = Reference(run, engine);
            foreach (var block in expected)
            {
                var reply = replies[(step, block.First)];
                Assert.Equal(Bits(block.Sum.Gradients), Bits(reply.Gradients));
                Assert.Equal(BitConverter.DoubleToInt64Bits(block.Sum.LossSum), BitConverter.DoubleToInt64Bits(reply.LossSum));
            }
            run.Apply(expected);
        }
        coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
    }

    [Fact]
    public void A_worker_whose_peer_never_sends_its_block_asks_for_the_parameters_and_goes_on_once_the_block_comes()
    {
        var run = new TrainingRun(Options, Config, Train, ParameterInit.Create(Config, Options.Seed));
        var (a, coordinator) = Start("a");
        var silent = CreateTestProbe();
        IActorRef[] peers = [a, silent.Ref];
        SendState(a, run, coordinator.Ref);
        a.Tell(Work(run, 0, 0, 2, peers), coordinator.Ref);
        var ahead = Work(run, 1, 0, 2, peers);
        a.Tell(ahead, coordinator.Ref);

        var mine = coordinator.ExpectMsg<GradientsComputed>(Wait);
        var sent = silent.ExpectMsg<GradientsComputed>(Wait);
        Assert.Equal((0L, 0, 4), (sent.Step, sent.MicroBatch, sent.StepMicroBatches));
        Assert.Equal(Bits(mine.Gradients), Bits(sent.Gradients));
        var missing = coordinator.ExpectMsg<ParametersMissing>(GradientWorker.ReplicaWait + Wait);
        Assert.Equal((1L, 0, 1L), (missing.Step, missing.MicroBatch, missing.ParametersVersion));

        // The other block of step 0 arrives after all (forwarded by the coordinator): the worker takes the step and computes step 1's work.
        using var engine = new GradientEngine(Config, null, Options.Dropout, Options.LabelSmoothing);
        var expected = Reference(run, engine);
        var other = expected[1].Sum;
        a.Tell(new GradientsComputed(RunId, 0, 2, 2, other.LossSum, other.Count, other.Gradients, other.Correct, 4, run.LearningRate), coordinator.Ref);
        a.Tell(ahead, coordinator.Ref);
        var next = coordinator.ExpectMsg<GradientsComputed>(Wait);
        run.Apply(expected);
        Assert.Equal(Bits(Reference(run, engine)[0].Sum.Gradients), Bits(next.Gradients));
    }

    [Fact]
    public void Work_handed_out_steps_ahead_waits_for_its_version_as_long_as_the_replica_keeps_taking_steps()
    {
        // Four steps; the work of steps 1 to 3 comes at once, and the peer's blocks come slowly, 0.9 s apart:
        // step 3's work waits longer than ReplicaWait in all, but never that long without a step taken (with
        // a second to spare for a slow first pass on a busy machine).
        var run = new TrainingRun(Options with { Epochs = 2 }, Config, Train, ParameterInit.Create(Config, Options.Seed));
        var (a, coordinator) = Start("a");
        var slow = CreateTestProbe();
        IActorRef[] peers = [a, slow.Ref];
        SendState(a, run, coordinator.Ref);
        foreach (var step in new long[] { 0, 1, 2, 3 }) a.Tell(Work(run, step, 0, 2, peers), coordinator.Ref);
        var pause = GradientWorker.ReplicaWait * 0.45;

        using var engine = new GradientEngine(Config, null, Options.Dropout, Options.LabelSmoothing);
        foreach (var step in new long[] { 0, 1, 2 })
        {
            var mine = coordinator.ExpectMsg<GradientsComputed>(Wait);
            var expected = Reference(run, engine);
            Assert.Equal((step, 0), (mine.Step, mine.MicroBatch));
            Assert.Equal(Bits(expected[0].Sum.Gradients), Bits(mine.Gradients));
            Thread.Sleep(pause);
            var other = expected[1].Sum;
            a.Tell(new GradientsComputed(RunId, step, 2, 2, other.LossSum, other.Count, other.Gradients, other.Correct, 4, run.LearningRate), slow.Ref);
            run.Apply(expected);
        }
        // No ParametersMissing came first: step 3's block, computed from the replica's own version 3.
        var last = coordinator.ExpectMsg<GradientsComputed>(Wait);
        Assert.Equal((3L, 0), (last.Step, last.MicroBatch));
        Assert.Equal(Bits(Reference(run, engine)[0].Sum.Gradients), Bits(last.Gradients));
        coordinator.ExpectNoMsg(TimeSpan.FromMilliseconds(300));
    }
}
