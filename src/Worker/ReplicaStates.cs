using NameRnn.Contracts;
using NameRnn.Model.Training;

namespace NameRnn.Worker;

/// <summary>A run's state on the wire and back (see <see cref="ReplicaState"/>): one place that lists its parts.</summary>
public static class ReplicaStates
{
    /// <summary>The most parts a state has: the parameters and at most a few optimizer buffers (Adam has two).</summary>
    public const int MaxParts = 8;

    /// <summary>Whether <paramref name="part"/> is a part of a set that could be a state (its numbers in range); what is not is dropped.</summary>
    public static bool IsPart(ReplicaState part) => part.Parts is >= 1 and <= MaxParts && part.Part >= 0 && part.Part < part.Parts;

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
        return new ParameterReplica(first.Version, first.Values, ToOptimizerState(parts), first.Momentum, first.WeightDecay, first.ClipNorm);
    }

    /// <summary>The optimizer's state a complete set of parts (in part order) carries: its kind, steps and buffers (parts 1 on).</summary>
    public static OptimizerState ToOptimizerState(IReadOnlyList<ReplicaState> parts) =>
        new(parts[0].Optimizer, parts[0].OptimizerSteps, parts.Skip(1).Select(p => p.Values).ToArray());
}
