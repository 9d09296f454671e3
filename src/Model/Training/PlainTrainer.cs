using NameRnn.Model.Network;

namespace NameRnn.Model.Training;

/// <summary>
/// The same protocol as the actors, in one loop on one thread with no actor in between: every
/// micro-batch of a step computed in turn by one engine. A baseline to compare the actor modes
/// against, for results (the same bits) and for speed.
/// </summary>
public static class PlainTrainer
{
    public static float[] Train(TrainingRun run, float[]? classWeights, Action<StepOutcome>? onStep = null)
    {
        using var engine = new GradientEngine(run.Config, classWeights, run.Options.Dropout, run.Options.LabelSmoothing);
        while (!run.Finished)
        {
            engine.LoadParameters(run.ParametersVersion, run.Parameters);
            var gradients = engine.ComputeMany(run.MicroBatches());
            var outcome = run.Apply(gradients);
            onStep?.Invoke(outcome);
        }
        return run.Parameters;
    }
}
