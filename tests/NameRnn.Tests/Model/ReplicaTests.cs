using NameRnn.Model.Data;
using NameRnn.Model.Network;
using NameRnn.Model.Training;

namespace NameRnn.Tests.Model;

/// <summary>
/// What lets a worker run ahead of the coordinator: the next step's work is known before this step is
/// applied, and a worker's replica takes the same optimizer steps, to the bit, as the coordinator.
/// </summary>
public class ReplicaTests
{
    private static readonly LabelledName[] Names = Enumerable.Range(0, 11).Select(i => new LabelledName($"Name{i}", i % 3)).ToArray();

    private static TrainingOptions Options(string optimizer) => new()
    {
        Epochs = 3, BatchSize = 4, MicroBatch = 1, Cell = Cells.Rnn, Hidden = 3, Optimizer = optimizer, LearningRate = 0.05, Momentum = 0.9,
        WeightDecay = 0.01, Schedule = Schedules.Cosine, ClipNorm = 0.5, AverageDecay = 0.9, Seed = 9,
    };

    /// <summary>Random block sums of the current step, cut into units for <paramref name="workers"/> workers.</summary>
    private static List<GradientBlock> Blocks(TrainingRun run, int workers, Random random)
    {
        var n = run.MicroBatchCount;
        return GradientTree.Units(n, workers).Select(u => new GradientBlock(u.First, u.MicroBatches, new MicroBatchGradients(
            random.NextDouble(), u.MicroBatches, Enumerable.Range(0, run.Config.ParameterCount).Select(_ => (float)(random.NextDouble() * 4 - 2)).ToArray(), 1))).ToList();
    }

    private static int[] Bits(float[] values) => values.Select(BitConverter.SingleToInt32Bits).ToArray();

    [Theory]
    [InlineData(Optimizers.Adam, 1)]
    [InlineData(Optimizers.Adam, 3)]
    [InlineData(Optimizers.Sgd, 2)]
    public void A_replica_started_from_the_runs_state_takes_the_same_steps_to_the_bit(string optimizer, int workers)
    {
        var options = Options(optimizer);
        var config = options.Model(3);
        var run = new TrainingRun(options, config, Names, ParameterInit.Create(config, options.Seed));
        var random = new Random(4);
        for (var i = 0; i < 4; i++) run.Apply(Blocks(run, workers, random));

        var replica = new ParameterReplica(run.ParametersVersion, run.Parameters, run.OptimizerState, options.Momentum, options.WeightDecay, options.ClipNorm);
        var steps = 0;
        while (!run.Finished)
        {
            var blocks = Blocks(run, workers, random);
            var (n, rate) = (run.MicroBatchCount, run.LearningRate);
            run.Apply(blocks);
            replica.Apply(blocks, n, rate);
            Assert.Equal(run.ParametersVersion, replica.Version);
            Assert.Equal(Bits(run.Parameters), Bits(replica.Parameters));
            steps++;
        }
        Assert.True(steps >= 4);
    }

    [Fact]
    public void A_replica_given_blocks_that_miss_a_micro_batch_refuses_them_and_stays_where_it_was()
    {
        var options = Options(Optimizers.Adam);
        var config = options.Model(3);
        var run = new TrainingRun(options, config, Names, ParameterInit.Create(config, options.Seed));
        var replica = new ParameterReplica(0, run.Parameters, run.OptimizerState, options.Momentum, options.WeightDecay, options.ClipNorm);
        var blocks = Blocks(run, 4, new Random(1));
        Assert.Throws<ArgumentException>(() => replica.Apply(blocks.Skip(1).ToList(), run.MicroBatchCount, run.LearningRate));
        Assert.Equal(0, replica.Version);
        Assert.Equal(Bits(run.Parameters), Bits(replica.Parameters));
    }

    [Fact]
    public void The_next_steps_work_known_ahead_is_the_work_that_step_has_when_it_comes_across_epochs()
    {
        var options = Options(Optimizers.Sgd) with { Dropout = 0.2 };
        var config = options.Model(3);
        var run = new TrainingRun(options, config, Names, ParameterInit.Create(config, options.Seed));
        var random = new Random(2);
        var compared = 0;
        while (!run.Finished)
        {
            var ahead = run.HasNextStep ? run.MicroBatchesOf(run.Step + 1) : null;
            var rate = run.HasNextStep ? run.LearningRateOf(run.Step + 1) : 0;
            Assert.Throws<ArgumentOutOfRangeException>(() => run.MicroBatchesOf(run.Step + 2));
            run.Apply(Blocks(run, 2, random));
            if (ahead is null)
            {
                Assert.True(run.Finished);
                break;
            }
            var now = run.MicroBatches();
            Assert.Equal(now.Select(b => (string.Join(",", b.Names), string.Join(",", b.Labels), b.NoiseSeed, b.Index)),
                ahead.Select(b => (string.Join(",", b.Names), string.Join(",", b.Labels), b.NoiseSeed, b.Index)));
            Assert.Equal(run.LearningRate, rate);
            compared++;
        }
        // 11 names in steps of 4: 3 steps per epoch, 3 epochs; two of the look-aheads cross into a new epoch.
        Assert.Equal(8, compared);
    }
}
