import { AppError } from '../errors.ts';
import type { Command } from './types.ts';

export const workerCommand: Command = {
  name: 'worker',
  summary: 'worker',
  usage: 'worker',
  options: {},
  async run() {
    throw new AppError('NOT_IMPLEMENTED', "'worker' is not implemented yet");
  },
};
