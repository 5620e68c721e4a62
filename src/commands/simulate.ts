import { AppError } from '../errors.ts';
import type { Command } from './types.ts';

export const simulateCommand: Command = {
  name: 'simulate',
  summary: 'simulate',
  usage: 'simulate',
  options: {},
  async run() {
    throw new AppError('NOT_IMPLEMENTED', "'simulate' is not implemented yet");
  },
};
