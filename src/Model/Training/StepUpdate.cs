using NameRnn.Model.Network;

namespace NameRnn.Model.Training;

/// <summary>What a step's gradient came to: the loss and names it covers, its L2 norm before clipping, the names the forward passes got right.</summary>
public readonly record struct StepGradient(double LossSum, int Count, double Norm, int Correct);

/// <summary>
/// One optimizer step from a step's block sums, the same code wherever it runs (the coordinator's
/// <see cref="TrainingRun"/>, a worker's <see cref="ParameterReplica"/>): the blocks added up the tree of
/// <see cref="GradientTree"/>, averaged over the names, clipped to the global norm, then the optimizer
/// on a copy of the parameters. The same inputs give the same bits.
/// </summary>
public static class StepUpdate
{
    public static (float[] Parameters, StepGradient Gradient) Apply(float[] parameters, IOptimizer optimizer, IReadOnlyList<GradientBlock> blocks,
        int microBatches, double clipNorm, double learningRate)
    {
        var sum = GradientTree.Combine(blocks, microBatches);
        if (sum.Gradients.Length != parameters.Length)
            throw new ArgumentException($"a gradient of {sum.Gradients.Length} values for a model of {parameters.Length}");
        var count = sum.Count;
        // 0 + sum, as when the sums were added one by one to zeros: the same bits as then for one or two
        // micro-batches. In place when the sum is an array of the tree's own, not a block's (which its
        // sender and the step's other replicas may still hold).
        var own = !blocks.Any(b => ReferenceEquals(b.Sum.Gradients, sum.Gradients));
        var total = own ? sum.Gradients : GC.AllocateUninitializedArray<float>(parameters.Length);
        VectorMath.ScaleFromZero(total, sum.Gradients, 1f / count);
        var lossSum = 0.0 + sum.LossSum;
        var norm = Math.Sqrt(VectorMath.SumOfSquares(total));
        if (clipNorm > 0 && norm > clipNorm) VectorMath.Scale(total, (float)(clipNorm / (norm + 1e-6)));
        var next = (float[])parameters.Clone();
        optimizer.Step(next, total, learningRate);
        return (next, new StepGradient(lossSum, count, norm, sum.Correct));
    }
}

/// <summary>
/// A worker's copy of the run's parameters and optimizer state at one version. Given every block sum of
/// the step at that version (from the workers that computed them), it takes the same optimizer step as
/// the coordinator, so that the worker can start the next step without waiting for the coordinator to
/// send the parameters: one message hop per step instead of two.
/// </summary>
public sealed class ParameterReplica
{
    private readonly IOptimizer _optimizer;

    public ParameterReplica(long version, float[] parameters, OptimizerState optimizer, double momentum, double weightDecay, double clipNorm)
    {
        Version = version;
        Parameters = parameters;
        _optimizer = Optimizers.Create(optimizer.Kind, parameters.Length, momentum, weightDecay, optimizer);
        ClipNorm = clipNorm;
        Momentum = momentum;
        WeightDecay = weightDecay;
    }

    public double Momentum { get; }
    public double WeightDecay { get; }
    public double ClipNorm { get; }

    /// <summary>The optimizer's state at <see cref="Version"/>, as <see cref="TrainingRun.OptimizerState"/> gives the coordinator's.</summary>
    public OptimizerState OptimizerState => _optimizer.State;

    /// <summary>The number of steps applied to the parameters.</summary>
    public long Version { get; private set; }

    /// <summary>The parameters at <see cref="Version"/>; a new array after every step.</summary>
    public float[] Parameters { get; private set; }

    /// <summary>Takes the step at <see cref="Version"/> from its block sums, which cover its <paramref name="microBatches"/> micro-batches.</summary>
    public void Apply(IReadOnlyList<GradientBlock> blocks, int microBatches, double learningRate)
    {
        (Parameters, _) = StepUpdate.Apply(Parameters, _optimizer, blocks, microBatches, ClipNorm, learningRate);
        Version++;
    }
}
