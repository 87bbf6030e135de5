/*
 * The worker of the piscina and tinypool peers: both run a task by calling
 * the module's default export with the task's argument.
 */
export default function inc(x: number): number {
  return x + 1;
}
