using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;
using NameRnn.Model.Data;
using NameRnn.Model.Network;
using NameRnn.Model.Training;

namespace NameRnn.Tests.Model;

/// <summary>
/// How a step's names are cut into micro-batches: all of them, once each, by length, and so that two
/// workers' passes cost about the same.
/// </summary>
public class BalancedCutTests
{
    /// <summary>The cost model of a pass, computed from scratch: the letter step cost times its longest name, plus its letters.</summary>
    private static long PassCost(IEnumerable<int> lengths, int letterStepCost)
    {
        var list = lengths.ToList();
        return (long)letterStepCost * list.Max() + list.Sum();
    }

    private static int[] Lengths(int[] raw) => raw.Select(v => 1 + Math.Abs(v % 19)).ToArray();

    [Property(MaxTest = 300)]
    public void Every_name_goes_into_one_micro_batch_and_the_longer_names_into_the_earlier_ones(NonEmptyArray<int> raw, PositiveInt count, byte cost)
    {
        var lengths = Lengths(raw.Get);
        var m = 1 + (count.Get - 1) % lengths.Length;
        var cut = BalancedCut.Cut(lengths, m, cost);

        Assert.Equal(m, cut.Length);
        Assert.All(cut, part => Assert.NotEmpty(part));
        Assert.All(cut, part => Assert.Equal(part.Order(), part));
        Assert.Equal(Enumerable.Range(0, lengths.Length), cut.SelectMany(p => p).Order());
        for (var i = 1; i < m; i++)
            Assert.True(cut[i - 1].Min(r => lengths[r]) >= cut[i].Max(r => lengths[r]), $"micro-batch {i - 1} has a name shorter than one of micro-batch {i}");
    }

    [Property(MaxTest = 300)]
    public void Two_micro_batches_split_the_names_by_length_where_the_dearer_pass_costs_least(NonEmptyArray<int> raw, byte cost)
    {
        var lengths = Lengths(raw.Get).Append(3).ToArray();
        var cut = BalancedCut.Cut(lengths, 2, cost);
        var worst = Math.Max(PassCost(cut[0].Select(r => lengths[r]), cost), PassCost(cut[1].Select(r => lengths[r]), cost));

        // Every split of the names, longest first, into two non-empty parts.
        var sorted = lengths.OrderDescending().ToArray();
        var best = Enumerable.Range(1, sorted.Length - 1).Min(k => Math.Max(PassCost(sorted[..k], cost), PassCost(sorted[k..], cost)));
        Assert.Equal(best, worst);
    }

    [Fact]
    public void On_the_real_names_the_slower_of_two_workers_passes_costs_less_than_with_the_batch_cut_in_order()
    {
        var train = NamesData.Load(TestData.NamesFolder).SplitOf(Split.Train);
        var letterStepCost = BalancedCut.LetterStepCost(128);
        var random = new Random(5);
        foreach (var batch in new[] { 64, 256 })
        {
            var (inOrder, balanced) = (0L, 0L);
            for (var step = 0; step < 300; step++)
            {
                var lengths = Enumerable.Range(0, batch).Select(_ => train[random.Next(train.Count)].Name.Length).ToArray();
                inOrder += Math.Max(PassCost(lengths[..(batch / 2)], letterStepCost), PassCost(lengths[(batch / 2)..], letterStepCost));
                var cut = BalancedCut.Cut(lengths, 2, letterStepCost);
                balanced += cut.Max(part => PassCost(part.Select(r => lengths[r]), letterStepCost));
            }
            // About 7 % less at batch 64 and 3 % at 256 (the larger halves differ less).
            Assert.True(balanced < inOrder * 0.99, $"batch {batch}: the dearer pass cost {balanced} in all, against {inOrder} cut in order");
        }
    }

    [Theory]
    [InlineData(64, 32)]
    [InlineData(100, 32)]
    [InlineData(256, 128)]
    [InlineData(7, 1)]
    public void A_steps_micro_batches_hold_exactly_the_names_of_its_batch(int batch, int microBatch)
    {
        var train = NamesData.Load(TestData.NamesFolder).SplitOf(Split.Train).Take(1000).ToList();
        var options = new TrainingOptions { Epochs = 1, BatchSize = batch, MicroBatch = microBatch, Seed = 3 };
        var config = options.Model(18);
        var run = new TrainingRun(options, config, train, ParameterInit.Create(config, options.Seed));
        var order = SplitMix64.EpochPermutation(train.Count, options.Seed, 0);
        var zero = new float[config.ParameterCount];
        for (var step = 0; !run.Finished; step++)
        {
            var expected = order.Skip(step * batch).Take(batch).Select(i => train[i]).ToList();
            var microBatches = run.MicroBatches();
            Assert.Equal((expected.Count + microBatch - 1) / microBatch, microBatches.Count);
            Assert.Equal(Enumerable.Range(0, microBatches.Count), microBatches.Select(m => m.Index));
            var got = microBatches.SelectMany(m => m.Names.Zip(m.Labels, (n, l) => new LabelledName(n, l))).ToList();
            Assert.Equal(expected.Select(p => p.ToString()).Order(), got.Select(p => p.ToString()).Order());
            run.Apply(microBatches.Select(m => new MicroBatchGradients(0, m.Names.Length, zero)).ToList());
        }
    }
}
