declare module "asl-validator" {
  interface ValidationResult {
    readonly isValid: boolean;
    readonly errors: { message?: string }[];
    errorsText(separator?: string): string;
  }
  export default function aslValidator(definition: unknown, options?: { checkPaths?: boolean; checkArn?: boolean }): ValidationResult;
}
