using NameRnn.Contracts;
using NameRnn.Model.Training;

namespace NameRnn.Worker;

/// <summary>A run's state on the wire and back (see <see cref="ReplicaState"/>): one place that lists its parts.</summary>
public static class ReplicaStates
{
    /// <summary>The messages that carry the state at <paramref name="version"/>: part 0 the parameters, then one per optimizer buffer.</summary>
    public static IEnumerable<ReplicaState> ToMessages(string runId, long version, float[] parameters, OptimizerState optimizer,
        double momentum, double weightDecay, double clipNorm, long generation = 0)
    {
        var parts = 1 + optimizer.Buffers.Length;
        for (var part = 0; part < parts; part++)
            yield return new ReplicaState(runId, version, part, parts, optimizer.Kind, optimizer.Steps, momentum, weightDecay, clipNorm,
                part == 0 ? parameters : optimizer.Buffers[part - 1], generation);
    }

    /// <summary>The replica a complete set of parts (in part order) describes; an <see cref="ArgumentException"/> when they do not fit together.</summary>
    public static ParameterReplica ToReplica(IReadOnlyList<ReplicaState> parts)
    {
        var first = parts[0];
        var buffers = parts.Skip(1).Select(p => p.Values).ToArray();
        return new ParameterReplica(first.Version, first.Values, new OptimizerState(first.Optimizer, first.OptimizerSteps, buffers),
            first.Momentum, first.WeightDecay, first.ClipNorm);
    }
}
