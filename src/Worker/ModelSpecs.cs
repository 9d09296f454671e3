using NameRnn.Contracts;
using NameRnn.Model.Network;

namespace NameRnn.Worker;

/// <summary>The model description on the wire and back: one place that lists its fields.</summary>
public static class ModelSpecs
{
    public static ModelSpec ToSpec(this ModelConfig config) =>
        new(config.Cell, config.Hidden, config.Classes, config.Inputs, config.Embedding, config.Bidirectional, config.Pooling, config.Layers, config.Hash());

    /// <summary>The model <paramref name="spec"/> describes; its hash is the sender's, to compare with <see cref="ModelConfig.Hash"/>.</summary>
    public static ModelConfig ToConfig(this ModelSpec spec) =>
        new(spec.Cell, spec.Hidden, spec.Classes, spec.Inputs, spec.Embedding, spec.Bidirectional, spec.Pooling, spec.Layers);
}
