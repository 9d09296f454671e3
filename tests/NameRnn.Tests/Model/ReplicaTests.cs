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
    public void The_work_of_later_steps_known_ahead_is_the_work_those_steps_have_when_they_come_across_epochs()
    {
        var options = Options(Optimizers.Sgd) with { Dropout = 0.2 };
        var config = options.Model(3);
        var run = new TrainingRun(options, config, Names, ParameterInit.Create(config, options.Seed));
        var random = new Random(2);
        // What each step's work was said to be, from each of the (up to) four steps before it, and its learning rate.
        var told = new Dictionary<long, List<(IReadOnlyList<MicroBatch> Work, double Rate)>>();
        var compared = 0;
        while (!run.Finished)
        {
            for (var ahead = 0L; ahead <= 4; ahead++)
            {
                var step = run.Step + ahead;
                if (step >= run.TotalSteps)
                {
                    Assert.Throws<ArgumentOutOfRangeException>(() => run.MicroBatchesOf(step));
                    continue;
                }
                if (ahead > 0) (told.TryGetValue(step, out var list) ? list : told[step] = []).Add((run.MicroBatchesOf(step), run.LearningRateOf(step)));
            }
            if (run.Step > 0) Assert.Throws<ArgumentOutOfRangeException>(() => run.MicroBatchesOf(run.Step - 1));
            var now = run.MicroBatches();
            foreach (var (work, rate) in told.GetValueOrDefault(run.Step) ?? [])
            {
                Assert.Equal(now.Select(b => (string.Join(",", b.Names), string.Join(",", b.Labels), b.NoiseSeed, b.Index)),
                    work.Select(b => (string.Join(",", b.Names), string.Join(",", b.Labels), b.NoiseSeed, b.Index)));
                Assert.Equal(run.LearningRate, rate);
                compared++;
            }
            run.Apply(Blocks(run, 2, random));
        }
        // 11 names in steps of 4: 3 steps per epoch, 3 epochs, so the look-aheads cross one or two epochs' ends;
        // steps 1, 2, 3 and 4–8 were told 1, 2, 3 and 4 times.
        Assert.Equal(1 + 2 + 3 + 5 * 4, compared);
    }
}
