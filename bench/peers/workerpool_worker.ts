/* The worker of the workerpool peer: workerpool calls methods registered by name. */
import workerpool from 'workerpool';

workerpool.worker({ fn: (x: number): number => x + 1 });
